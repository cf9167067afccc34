//! [`PermissionSet`]: a fixed-size bitset over every `(resource, action)` pair.

use std::fmt;

use crate::vocab::{ACTION_COUNT, Action, Permission, RESOURCE_COUNT, Resource};

// One `u16` of action bits per resource.
const _: () = assert!(ACTION_COUNT <= 16);

/// Bits of a row that correspond to real actions.
const ROW_MASK: u16 = ((1u32 << ACTION_COUNT) - 1) as u16;

/// An immutable set of [`Permission`]s.
///
/// Stored as one row of action bits per resource, so [`contains`](Self::contains)
/// is an array index and a mask; the whole set is a small `Copy` value.
/// Iteration yields permissions in `Ord` order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PermissionSet {
    rows: [u16; RESOURCE_COUNT],
}

impl PermissionSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self {
            rows: [0; RESOURCE_COUNT],
        }
    }

    /// Every representable permission.
    pub const fn all() -> Self {
        Self {
            rows: [ROW_MASK; RESOURCE_COUNT],
        }
    }

    /// Builds a set from a slice; usable in `const` context.
    pub const fn from_slice(permissions: &[Permission]) -> Self {
        let mut rows = [0u16; RESOURCE_COUNT];
        let mut i = 0;
        while i < permissions.len() {
            let p = permissions[i];
            rows[p.resource.index()] |= bit(p.action);
            i += 1;
        }
        Self { rows }
    }

    /// Whether `permission` is in the set.
    #[inline]
    pub const fn contains(&self, permission: Permission) -> bool {
        self.rows[permission.resource.index()] & bit(permission.action) != 0
    }

    /// The set of permissions in `self` or `other`.
    pub const fn union(&self, other: &Self) -> Self {
        let mut rows = self.rows;
        let mut i = 0;
        while i < RESOURCE_COUNT {
            rows[i] |= other.rows[i];
            i += 1;
        }
        Self { rows }
    }

    /// The set of permissions in both `self` and `other`.
    pub const fn intersection(&self, other: &Self) -> Self {
        let mut rows = self.rows;
        let mut i = 0;
        while i < RESOURCE_COUNT {
            rows[i] &= other.rows[i];
            i += 1;
        }
        Self { rows }
    }

    /// The set of permissions in `self` but not in `other`.
    pub const fn difference(&self, other: &Self) -> Self {
        let mut rows = self.rows;
        let mut i = 0;
        while i < RESOURCE_COUNT {
            rows[i] &= !other.rows[i];
            i += 1;
        }
        Self { rows }
    }

    /// Whether every permission of `self` is also in `other` (e.g. a robot's
    /// requested permissions against [`robot_permissions`](crate::robot_permissions)).
    pub const fn is_subset(&self, other: &Self) -> bool {
        let mut i = 0;
        while i < RESOURCE_COUNT {
            if self.rows[i] & !other.rows[i] != 0 {
                return false;
            }
            i += 1;
        }
        true
    }

    /// A copy of `self` with `permission` added.
    #[must_use]
    pub const fn with(mut self, permission: Permission) -> Self {
        self.rows[permission.resource.index()] |= bit(permission.action);
        self
    }

    /// Whether the set has no permissions.
    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(|r| *r == 0)
    }

    /// Number of permissions in the set.
    pub fn len(&self) -> usize {
        self.rows.iter().map(|r| r.count_ones() as usize).sum()
    }

    /// Iterates the permissions in `Ord` order (by resource, then action).
    pub fn iter(&self) -> Iter {
        Iter {
            rows: self.rows,
            resource: 0,
        }
    }
}

/// The empty set.
impl Default for PermissionSet {
    fn default() -> Self {
        Self::empty()
    }
}

#[inline]
const fn bit(action: Action) -> u16 {
    1 << action.index()
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Self::empty();
        set.extend(iter);
        set
    }
}

impl Extend<Permission> for PermissionSet {
    fn extend<I: IntoIterator<Item = Permission>>(&mut self, iter: I) {
        for p in iter {
            self.rows[p.resource.index()] |= bit(p.action);
        }
    }
}

impl IntoIterator for &PermissionSet {
    type Item = Permission;
    type IntoIter = Iter;

    fn into_iter(self) -> Iter {
        self.iter()
    }
}

impl IntoIterator for PermissionSet {
    type Item = Permission;
    type IntoIter = Iter;

    fn into_iter(self) -> Iter {
        self.iter()
    }
}

/// Lists the permissions as `resource:action` strings.
impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|p| format!("{p}")))
            .finish()
    }
}

/// Iterator over a [`PermissionSet`], in `Ord` order.
#[derive(Debug, Clone)]
pub struct Iter {
    rows: [u16; RESOURCE_COUNT],
    resource: usize,
}

impl Iterator for Iter {
    type Item = Permission;

    fn next(&mut self) -> Option<Permission> {
        while self.resource < RESOURCE_COUNT {
            let row = &mut self.rows[self.resource];
            if *row != 0 {
                let action = row.trailing_zeros() as usize;
                *row &= *row - 1;
                return Some(Permission::new(
                    Resource::ALL[self.resource],
                    Action::ALL[action],
                ));
            }
            self.resource += 1;
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rows[self.resource.min(RESOURCE_COUNT)..]
            .iter()
            .map(|r| r.count_ones() as usize)
            .sum();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter {}

impl std::iter::FusedIterator for Iter {}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_pair() -> impl Iterator<Item = Permission> {
        Resource::ALL
            .into_iter()
            .flat_map(|r| Action::ALL.into_iter().map(move |a| Permission::new(r, a)))
    }

    #[test]
    fn every_pair_round_trips_through_strings() {
        for p in every_pair() {
            assert_eq!(p.resource.as_str().parse::<Resource>(), Ok(p.resource));
            assert_eq!(p.action.as_str().parse::<Action>(), Ok(p.action));
            assert_eq!(p.resource.to_string(), p.resource.as_str());
            assert_eq!(p.action.to_string(), p.action.as_str());
        }
        assert!("".parse::<Resource>().is_err());
        assert!("*".parse::<Resource>().is_err());
        assert!("*".parse::<Action>().is_err());
        assert_eq!(
            "Repository".parse::<Resource>(),
            Err(crate::UnknownResource("Repository".into()))
        );
        assert_eq!(
            "fly".parse::<Action>(),
            Err(crate::UnknownAction("fly".into()))
        );
    }

    #[test]
    fn wire_strings_are_unique() {
        let mut r: Vec<_> = Resource::ALL.iter().map(|r| r.as_str()).collect();
        r.sort_unstable();
        r.dedup();
        assert_eq!(r.len(), RESOURCE_COUNT);
        let mut a: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len(), ACTION_COUNT);
    }

    #[test]
    fn full_set_from_iterator_contains_every_pair() {
        let all: PermissionSet = every_pair().collect();
        assert_eq!(all, PermissionSet::all());
        assert_eq!(all.len(), RESOURCE_COUNT * ACTION_COUNT);
        for p in every_pair() {
            assert!(all.contains(p), "{p}");
        }
        let listed: Vec<_> = all.iter().collect();
        let expected: Vec<_> = every_pair().collect();
        assert_eq!(listed, expected);
        assert_eq!(all.iter().len(), expected.len());
    }

    #[test]
    fn singleton_sets_are_exact() {
        for p in every_pair() {
            let set: PermissionSet = std::iter::once(p).collect();
            assert_eq!(set.len(), 1);
            assert!(!set.is_empty());
            assert_eq!(set.iter().collect::<Vec<_>>(), vec![p]);
            for q in every_pair() {
                assert_eq!(set.contains(q), p == q, "{p} vs {q}");
            }
        }
    }

    #[test]
    fn set_operations() {
        let pull = Permission::new(Resource::Repository, Action::Pull);
        let push = Permission::new(Resource::Repository, Action::Push);
        let list = Permission::new(Resource::Member, Action::List);
        let a = PermissionSet::from_slice(&[pull, push]);
        let b: PermissionSet = [push, list].into_iter().collect();

        let u = a.union(&b);
        assert_eq!(u.len(), 3);
        assert!(u.contains(pull) && u.contains(push) && u.contains(list));
        assert_eq!(a.intersection(&b).iter().collect::<Vec<_>>(), vec![push]);
        assert_eq!(a.difference(&b).iter().collect::<Vec<_>>(), vec![pull]);
        assert!(a.is_subset(&u) && b.is_subset(&u) && !u.is_subset(&a));
        assert!(PermissionSet::empty().is_subset(&a));
        assert!(PermissionSet::empty().is_empty());
        assert_eq!(PermissionSet::empty().len(), 0);
        assert_eq!(PermissionSet::default(), PermissionSet::empty());
        assert_eq!(PermissionSet::empty().with(list), b.difference(&a));
        // Iteration is sorted, regardless of insertion order.
        let sorted: Vec<_> = [list, push, pull]
            .into_iter()
            .collect::<PermissionSet>()
            .iter()
            .collect();
        let mut expected = vec![list, push, pull];
        expected.sort();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn debug_lists_wire_strings() {
        let set = PermissionSet::from_slice(&[Permission::new(Resource::Repository, Action::Pull)]);
        assert_eq!(format!("{set:?}"), r#"{"repository:pull"}"#);
    }
}
