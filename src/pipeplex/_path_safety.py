"""Whether another user could change the way to a folder of ours while we use it.

A path is only as safe as the folders and links it goes through: whoever may rename an
entry in one of them (its owner, or anyone where others may write and the folder is not
sticky) could swap a folder for a link of theirs between our check and our use, and have
pipeplex put its pipes, or write a record, where they choose. The run folder and the
records pipeplex writes at paths the user gives are both refused on such a way.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from pathlib import Path

__all__ = ("unsafe_above", "unsafe_way")


def unsafe_above(path: Path, at_risk: str) -> str | None:
    """Why someone else could move ``path`` away, or swap a folder or a link on the way to
    it (see :func:`unsafe_way`, of its folder)."""
    return unsafe_way(path.parent, at_risk)


def unsafe_way(folder: Path, at_risk: str, trusted: Collection[int] = ()) -> str | None:
    """Why someone else could swap ``folder``, or a folder or a link on the way to it: a
    folder on the way (``folder`` itself too) that belongs to another user, or that others
    may write to and is not sticky (as /tmp is), or a symbolic link of another user, who
    could point it elsewhere. ``at_risk`` says what they could then do ("move the run
    folder away and ..."). The path is followed as the kernel follows it, link by link, so
    every folder it goes through counts, those a link leads through too; a relative one
    from the working folder, which the process holds (no folder above it can take it
    away). Root's folders and links, the user's own and those of the ``trusted`` users
    are safe. None if nothing is in the way; a folder that is missing is made by us,
    below it nothing can be in the way."""
    safe = (0, os.geteuid(), *trusted)
    # (A relative one is looked at from ".": the folder the process holds, as the kernel
    # takes it, not its name, which a folder above could be renamed under.)
    todo, current = (list(folder.parts[1:]), "/") if folder.is_absolute() else (
        list(folder.parts), ".")
    why = _open_to_others(current, at_risk, safe)
    hops = 0
    while todo and why is None:
        name = todo.pop(0)
        if name in ("", "."):
            continue
        if name == "..":  # (the folder it leads to holds the next name: checked too)
            current = (os.path.dirname(current) if os.path.isabs(current)
                       else os.path.join(current, ".."))
            why = _open_to_others(current, at_risk, safe)
            continue
        step = os.path.join(current, name)
        try:
            st = os.lstat(step)
        except OSError:
            return None  # (missing: what is below is made by us)
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in safe:
                return (f"{step} is a symbolic link of uid {st.st_uid}, who could point it "
                        "elsewhere during the run")
            hops += 1
            if hops > 40:
                return f"{step} leads through more than 40 symbolic links"
            target = os.readlink(step)
            if os.path.isabs(target):
                current = "/"
            todo[:0] = Path(target).parts[1 if os.path.isabs(target) else 0:]
            continue
        if not stat.S_ISDIR(st.st_mode):
            return None  # (no folder: whoever makes one there says so)
        current = step
        why = _open_to_others(current, at_risk, safe, st)
    return why


def _open_to_others(folder: str, at_risk: str, safe: Collection[int],
                    st: os.stat_result | None = None) -> str | None:
    """Why someone else (than the ``safe`` users) could rename what is in ``folder``."""
    if st is None:
        st = os.stat(folder)
    if st.st_uid not in safe:
        return f"{folder} belongs to uid {st.st_uid}, who could {at_risk}"
    if _others_may_write(folder, st) and not st.st_mode & stat.S_ISVTX:
        return (f"others may write to {folder} (mode {stat.S_IMODE(st.st_mode):04o}), and so "
                f"{at_risk}")
    return None


def _others_may_write(folder: str, st: os.stat_result) -> bool:
    """Whether anyone but the user may write to ``folder``: others, or its group, unless
    that is the user's own (of the user's name, with no other members, and nobody else's
    as theirs), and with no ACL that may name other users."""
    if st.st_mode & 0o002:
        return True
    if not st.st_mode & 0o020:
        return False
    import grp
    import pwd

    try:
        os.getxattr(folder, "system.posix_acl_access")
        return True  # (the group bits are then the mask of entries that may name others)
    except OSError:
        pass
    try:
        group = grp.getgrgid(st.st_gid)
        me = pwd.getpwuid(os.geteuid())
    except KeyError:
        return True
    return not (st.st_gid == me.pw_gid and group.gr_name == me.pw_name and not group.gr_mem
                and all(user.pw_gid != st.st_gid or user.pw_uid == me.pw_uid
                        for user in pwd.getpwall()))
