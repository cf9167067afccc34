#!/usr/bin/python3
"""A FUSE filesystem that remembers only what was made durable, to simulate a power cut.

    lossy_fs.py BACKING MOUNTPOINT

Every operation takes effect at once, as on any filesystem: file bytes are written to
BACKING/files/<inode> as they arrive, and the namespace (directories, names) lives in
memory. Beside that live state the filesystem keeps the state a power cut would leave,
following POSIX's promises and nothing more:

- a file's contents (bytes and length) are durable as of its last fsync or fdatasync,
  copied then to BACKING/durable/<inode>; a file never synced is empty;
- a directory's entries (name -> inode) are durable as of its last fsync; a directory
  never synced is empty. The root starts durable and empty. Syncing a file never makes
  its name durable, and syncing a directory never makes its files' contents durable.

A file stays durable under a name after being renamed or unlinked until that directory
is synced again, so a power cut may show a renamed file under both names.

It is driven by lines on standard input, each answered by one line on standard output:

    sync       make the whole live state durable, as sync(1) followed by a long wait would
    cut DIR    write the durable state into the empty directory DIR (the power cut); the
               filesystem keeps serving, but nothing done afterwards is written anywhere
    (EOF)      unmount and exit

It prints `ready` once mounted; with LOSSY_FS_TRACE=1 it logs every operation to
standard error.

Shared writable mmap works (SQLite's -shm) because files are served through the
kernel's page cache (no direct_io) in write-through mode (no writeback cache): every
write(2) reaches this process before the call returns, and the kernel writes mmap'd
pages back before it sends an fsync. It is written against libfuse 3 (pyfuse3) because
Berth publishes blobs with renameat2(RENAME_NOREPLACE), which libfuse 2 (fusepy) answers
with EINVAL.
"""

import errno
import functools
import os
import shutil
import stat
import sys
import time

import pyfuse3
import trio

ROOT = pyfuse3.ROOT_INODE
TIMEOUT = 60.0  # every change goes through the kernel, so its caches stay right


class Node:
    def __init__(self, ino, mode, parent):
        self.ino = ino
        self.mode = mode
        self.parent = parent  # live parent inode, None once unlinked
        self.children = {} if stat.S_ISDIR(mode) else None  # live entries: name -> inode
        now = time.time_ns()
        self.times = [now, now, now]  # atime, mtime, ctime (directories only)

    @property
    def is_dir(self):
        return self.children is not None


TRACE = os.environ.get("LOSSY_FS_TRACE") == "1"


def oserrors(f):
    """Answers an OSError from the backing store with its errno."""

    @functools.wraps(f)
    async def wrapper(*args):
        if TRACE:
            shown = [a for a in args[1:] if not isinstance(a, (bytes, memoryview)) or len(a) < 256]
            print(f.__name__, *shown, file=sys.stderr, flush=True)
        try:
            return f(*args)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from e

    return wrapper


class LossyFs(pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self, backing):
        super().__init__()
        self.files = os.path.join(backing, "files")
        self.durable = os.path.join(backing, "durable")
        os.makedirs(self.files)
        os.makedirs(self.durable)
        self.nodes = {ROOT: Node(ROOT, stat.S_IFDIR | 0o755, None)}  # kept for ever
        self.next_ino = ROOT + 1
        # Durable namespace: directory inode -> {name: inode} as of its last fsync.
        self.durable_entries = {ROOT: {}}
        # Inodes whose contents were synced at least once (copy in self.durable).
        self.synced = set()
        self.handles = {}  # fh -> (inode, fd or None for a directory)
        self.next_fh = 1

    # --- helpers -------------------------------------------------------------------

    def path(self, ino):
        return os.path.join(self.files, str(ino))

    def node(self, ino):
        try:
            return self.nodes[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def directory(self, ino):
        node = self.node(ino)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return node

    def attrs(self, node):
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = TIMEOUT
        a.attr_timeout = TIMEOUT
        a.st_uid = os.getuid()
        a.st_gid = os.getgid()
        a.st_blksize = 4096
        if node.is_dir:
            a.st_mode = node.mode
            a.st_nlink = 2 + sum(1 for c in node.children.values() if self.nodes[c].is_dir)
            a.st_size = 4096
            a.st_blocks = 8
            a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = node.times
        else:
            st = os.stat(self.path(node.ino))
            a.st_mode = st.st_mode
            a.st_nlink = 1 if node.parent is not None else 0
            a.st_size = st.st_size
            a.st_blocks = st.st_blocks
            a.st_atime_ns = st.st_atime_ns
            a.st_mtime_ns = st.st_mtime_ns
            a.st_ctime_ns = st.st_ctime_ns
        return a

    def touch(self, node):
        now = time.time_ns()
        node.times[1] = node.times[2] = now

    def new_node(self, parent_ino, name, mode):
        parent = self.directory(parent_ino)
        if name in parent.children:
            raise pyfuse3.FUSEError(errno.EEXIST)
        node = Node(self.next_ino, mode, parent_ino)
        self.next_ino += 1
        if not node.is_dir:
            fd = os.open(self.path(node.ino), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.chmod(self.path(node.ino), stat.S_IMODE(mode))
        self.nodes[node.ino] = node
        parent.children[name] = node.ino
        self.touch(parent)
        return node

    def open_handle(self, ino, fd):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = (ino, fd)
        return fh

    def detach(self, ino):
        """Unlinks a live node (its durable past is kept)."""
        self.nodes[ino].parent = None

    def sync_file(self, ino):
        tmp = os.path.join(self.durable, f"{ino}.tmp")
        shutil.copyfile(self.path(ino), tmp)
        os.replace(tmp, os.path.join(self.durable, str(ino)))
        self.synced.add(ino)

    def sync_all(self):
        for ino, node in self.nodes.items():
            if node.is_dir:
                self.durable_entries[ino] = dict(node.children)
            elif node.parent is not None:
                self.sync_file(ino)

    def materialize(self, out):
        """Writes the durable tree into the empty directory `out`."""
        seen = set()

        def fill(dir_ino, dest):
            seen.add(dir_ino)
            for name, ino in sorted(self.durable_entries.get(dir_ino, {}).items()):
                target = os.path.join(dest, os.fsdecode(name))
                node = self.nodes[ino]
                if node.is_dir:
                    if ino in seen:  # a cycle made of directory renames
                        continue
                    os.mkdir(target, stat.S_IMODE(node.mode))
                    fill(ino, target)
                elif ino in self.synced:
                    shutil.copyfile(os.path.join(self.durable, str(ino)), target)
                else:
                    open(target, "wb").close()

        fill(ROOT, out)

    # --- FUSE operations -----------------------------------------------------------

    @oserrors
    def lookup(self, parent_inode, name, ctx):
        parent = self.directory(parent_inode)
        try:
            return self.attrs(self.nodes[parent.children[name]])
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    @oserrors
    def forget(self, inode_list):
        pass

    @oserrors
    def getattr(self, inode, ctx):
        return self.attrs(self.node(inode))

    @oserrors
    def setattr(self, inode, attr, fields, fh, ctx):
        node = self.node(inode)
        if node.is_dir:
            if fields.update_size:
                raise pyfuse3.FUSEError(errno.EISDIR)
            if fields.update_mode:
                node.mode = stat.S_IFDIR | stat.S_IMODE(attr.st_mode)
            if fields.update_atime:
                node.times[0] = attr.st_atime_ns
            if fields.update_mtime:
                node.times[1] = attr.st_mtime_ns
            node.times[2] = time.time_ns()
            return self.attrs(node)
        path = self.path(inode)
        if fields.update_size:
            os.truncate(path, attr.st_size)
        if fields.update_mode:
            os.chmod(path, stat.S_IMODE(attr.st_mode))
        if fields.update_atime or fields.update_mtime:
            st = os.stat(path)
            atime = attr.st_atime_ns if fields.update_atime else st.st_atime_ns
            mtime = attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns
            os.utime(path, ns=(atime, mtime))
        return self.attrs(node)

    @oserrors
    def mknod(self, parent_inode, name, mode, rdev, ctx):
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)
        return self.attrs(self.new_node(parent_inode, name, mode))

    @oserrors
    def mkdir(self, parent_inode, name, mode, ctx):
        return self.attrs(self.new_node(parent_inode, name, stat.S_IFDIR | stat.S_IMODE(mode)))

    @oserrors
    def create(self, parent_inode, name, mode, flags, ctx):
        node = self.new_node(parent_inode, name, stat.S_IFREG | stat.S_IMODE(mode))
        fd = os.open(self.path(node.ino), os.O_RDWR)
        info = pyfuse3.FileInfo(fh=self.open_handle(node.ino, fd), keep_cache=True)
        return info, self.attrs(node)

    @oserrors
    def unlink(self, parent_inode, name, ctx):
        parent = self.directory(parent_inode)
        ino = parent.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if self.nodes[ino].is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        del parent.children[name]
        self.detach(ino)
        self.touch(parent)

    @oserrors
    def rmdir(self, parent_inode, name, ctx):
        parent = self.directory(parent_inode)
        ino = parent.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        node = self.nodes[ino]
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if node.children:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        del parent.children[name]
        self.detach(ino)
        self.touch(parent)

    @oserrors
    def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        if flags & ~pyfuse3.RENAME_NOREPLACE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old_parent = self.directory(parent_inode_old)
        new_parent = self.directory(parent_inode_new)
        ino = old_parent.children.get(name_old)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        node = self.nodes[ino]
        if node.is_dir:  # refuse moving a directory below itself
            up = parent_inode_new
            while up is not None:
                if up == ino:
                    raise pyfuse3.FUSEError(errno.EINVAL)
                up = self.nodes[up].parent
        replaced = new_parent.children.get(name_new)
        if replaced == ino:
            return
        if replaced is not None:
            if flags & pyfuse3.RENAME_NOREPLACE:
                raise pyfuse3.FUSEError(errno.EEXIST)
            victim = self.nodes[replaced]
            if victim.is_dir and not node.is_dir:
                raise pyfuse3.FUSEError(errno.EISDIR)
            if node.is_dir and not victim.is_dir:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            if victim.is_dir and victim.children:
                raise pyfuse3.FUSEError(errno.ENOTEMPTY)
            self.detach(replaced)
        del old_parent.children[name_old]
        new_parent.children[name_new] = ino
        node.parent = parent_inode_new
        self.touch(old_parent)
        self.touch(new_parent)

    @oserrors
    def link(self, inode, new_parent_inode, new_name, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    @oserrors
    def symlink(self, parent_inode, name, target, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    @oserrors
    def open(self, inode, flags, ctx):
        node = self.node(inode)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        fd = os.open(self.path(inode), os.O_RDWR)
        if flags & os.O_TRUNC:
            os.ftruncate(fd, 0)
        return pyfuse3.FileInfo(fh=self.open_handle(inode, fd), keep_cache=True)

    @oserrors
    def read(self, fh, off, size):
        return os.pread(self.handles[fh][1], size, off)

    @oserrors
    def write(self, fh, off, buf):
        return os.pwrite(self.handles[fh][1], buf, off)

    @oserrors
    def flush(self, fh):
        pass

    @oserrors
    def release(self, fh):
        os.close(self.handles.pop(fh)[1])

    @oserrors
    def fsync(self, fh, datasync):
        # fdatasync and fsync both make the bytes and the length durable.
        self.sync_file(self.handles[fh][0])

    @oserrors
    def opendir(self, inode, ctx):
        self.directory(inode)
        return self.open_handle(inode, None)

    @oserrors
    def readdir(self, fh, start_id, token):
        node = self.directory(self.handles[fh][0])
        # Inode numbers only grow, so they make positions that survive changes.
        for name, ino in sorted(node.children.items(), key=lambda e: e[1]):
            if ino < start_id:
                continue
            if not pyfuse3.readdir_reply(token, name, self.attrs(self.nodes[ino]), ino + 1):
                break

    @oserrors
    def releasedir(self, fh):
        del self.handles[fh]

    @oserrors
    def fsyncdir(self, fh, datasync):
        ino = self.handles[fh][0]
        self.durable_entries[ino] = dict(self.nodes[ino].children)

    @oserrors
    def statfs(self, ctx):
        st = os.statvfs(self.files)
        s = pyfuse3.StatvfsData()
        for field in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                      "f_files", "f_ffree", "f_favail", "f_namemax"):
            setattr(s, field, getattr(st, field))
        return s

    @oserrors
    def access(self, inode, mode, ctx):
        self.node(inode)
        return True


async def control(fs):
    """Reads commands from standard input until EOF, then stops the main loop."""
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    pending = b""
    while True:
        data = await stdin.receive_some(4096)
        if not data:
            break
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            command, _, arg = line.decode().strip().partition(" ")
            try:
                if command == "sync":
                    fs.sync_all()
                    answer = "synced"
                elif command == "cut":
                    fs.materialize(arg)
                    answer = "cut"
                else:
                    answer = f"error: unknown command {command!r}"
            except Exception as e:  # reported to the test, which fails
                answer = f"error: {command}: {e!r}"
            print(answer, flush=True)
    pyfuse3.terminate()


async def serve(fs):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(control, fs)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def main():
    backing, mountpoint = sys.argv[1:3]
    fs = LossyFs(backing)
    options = set(pyfuse3.default_options)
    options.add("fsname=lossy_fs")
    pyfuse3.init(fs, mountpoint, options)
    print("ready", flush=True)
    try:
        trio.run(serve, fs)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
