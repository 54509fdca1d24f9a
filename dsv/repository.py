"""Opening a repository: find ``.dsv``, check its format version, wire store, refs and history.

The config file is the format gate: a repository whose ``config.json`` carries a
newer ``format`` than this dsv knows is refused before anything else is read.
"""

from __future__ import annotations

import os
import json
from collections.abc import Callable

from dsv.base.errors import CorruptMetadataError, FormatVersionError, NotARepositoryError, RepositoryExistsError, StorageError
from dsv.base.fsio import FileLock, atomic_write_bytes, fsync_dir, hostname, read_bytes
from dsv.base.layout import DSV_DIR, RepoLayout
from dsv.base.formats import REPOSITORY_FORMAT
from dsv.history.refs import HEADS, RefStore
from dsv.store.local import LocalObjectStore
from dsv.worktree import statcache
from dsv.worktree.ignore import IgnoreRules, load_ignore
from dsv.worktree.statcache import StatCache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dsv.config import RepoConfig
    from dsv.settings import Settings
    from dsv.worktree.fsmonitor import Session
    from dsv.remote import RemoteRepo
    from dsv.store.base import ObjectStore
    from dsv.history.revisions import History

DEFAULT_BRANCH = "main"


def find_root(start: str) -> str:
    """The nearest folder at or above ``start`` that holds ``.dsv``."""
    path = os.path.abspath(start)
    while True:
        if os.path.isdir(os.path.join(path, DSV_DIR)):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            raise NotARepositoryError(os.path.abspath(start))
        path = parent


_EXPECTED = {
    "core.fsmonitor": "true or false",
    "core.server": "true or false",
    "core.lock_timeout": "a number of seconds, 0 or more",
    "user.name": "any text",
    "user.email": "any text",
}
"""What each setting accepts, for the error a bad value gets."""


class Repository:
    """An open repository: layout, config, object store, refs and history.

    ``store`` replaces the repository's own object store (any
    :class:`~dsv.store.base.ObjectStore`: tests use an in-memory one). Without
    it, a partial clone's store fetches what it lacks from its promisor remote
    (docs/remotes.md), and any other repository uses ``.dsv/objects``.
    """

    def __init__(self, root: str, *, store: "ObjectStore | None" = None) -> None:
        self.layout = RepoLayout(os.path.abspath(root))
        self.root = self.layout.root
        try:
            self._config_bytes = read_bytes(self.layout.config)
        except FileNotFoundError:
            raise CorruptMetadataError("config", f"{self.layout.config} is missing", hint="the .dsv folder is damaged; restore it or run 'dsv init' elsewhere") from None
        except OSError as err:
            raise StorageError("read", self.layout.config, err) from err
        self._check_format()
        self._config: RepoConfig | None = None
        self._settings: Settings | None = None
        self._history: History | None = None
        self.refs = RefStore(self.layout.dsv)
        self.local_store = LocalObjectStore(self.layout.objects, before_write=self.upgrade_format)
        """The repository's own ``.dsv/objects`` (fsck and gc maintain it)."""
        self.store: ObjectStore = store if store is not None else self._default_store()

    def _default_store(self) -> "ObjectStore":
        """``.dsv/objects``, wrapped so a partial clone fetches missing objects from its promisor remote."""
        promisor = self._promisor_name()
        if promisor is None:
            return self.local_store
        from dsv.remote.promisor import PromisorStore

        return PromisorStore(self.local_store, lambda: self.open_remote(promisor))

    def _promisor_name(self) -> str | None:
        """The remote a partial clone fetches from (read without pydantic: status stays fast)."""
        try:
            raw = json.loads(self._config_bytes)
        except ValueError:
            return None
        value = raw.get("promisor") if isinstance(raw, dict) else None
        return value if isinstance(value, str) else None

    def open_remote(self, name: str) -> "RemoteRepo":
        """The configured remote ``name`` (:class:`dsv.remote.RemoteRepo`)."""
        from dsv.remote import open_remote

        return open_remote(self, name)

    @property
    def scratch_dir(self) -> str:
        """A folder for temp files on the repository's filesystem (swept by gc after its grace period)."""
        return os.path.join(self.layout.objects, "tmp")

    def _check_format(self) -> None:
        """The format gate, without pydantic (read-only commands stay fast)."""
        what = f"repository {self.layout.dsv}"
        try:
            version = json.loads(self._config_bytes).get("format")
        except (ValueError, AttributeError):
            raise CorruptMetadataError(f"config {self.layout.config}", "not a JSON object") from None
        if not isinstance(version, int) or isinstance(version, bool):
            raise CorruptMetadataError(f"config {self.layout.config}", "no integer 'format' version")
        if version > REPOSITORY_FORMAT:
            raise FormatVersionError(what, version, REPOSITORY_FORMAT)
        if version < 1:
            raise CorruptMetadataError(f"config {self.layout.config}", f"format {version} does not exist (the first is 1)")
        self.format_version = version

    @property
    def settings(self) -> "Settings":
        """Lock timeout and author from the config, checked as the model checks it but without pydantic."""
        if self._settings is None:
            from dsv.settings import read_settings

            self._settings = read_settings(self._config_bytes, what=f"config {self.layout.config}")
        return self._settings

    @property
    def config(self) -> "RepoConfig":
        """The validated config (parsed on first use)."""
        if self._config is None:
            from dsv.config import RepoConfig

            self._config = RepoConfig.from_json_bytes(self._config_bytes, what=f"config {self.layout.config}")
        return self._config

    @property
    def history(self) -> "History":
        """Commit reading and revision resolution."""
        if self._history is None:
            from dsv.history.revisions import History

            self._history = History(self.store, self.refs)
        return self._history

    @classmethod
    def open(cls, path: str = ".") -> "Repository":
        """Open the repository at or above ``path``."""
        return cls(find_root(path))

    @classmethod
    def init(cls, path: str = ".", *, branch: str = DEFAULT_BRANCH) -> "Repository":
        """Create an empty repository in ``path``."""
        layout = RepoLayout(os.path.abspath(path))
        if os.path.exists(layout.dsv):
            raise RepositoryExistsError(layout.dsv)
        try:
            os.makedirs(layout.root, exist_ok=True)
            tmp = os.path.join(layout.root, f".dsv.init-{os.getpid()}")
            os.mkdir(tmp)
            LocalObjectStore.create(os.path.join(tmp, "objects"))
            os.makedirs(os.path.join(tmp, "refs", "heads"))
            os.makedirs(os.path.join(tmp, "refs", "tags"))
            os.makedirs(os.path.join(tmp, "locks"))
            atomic_write_bytes(os.path.join(tmp, "HEAD"), f"ref: {HEADS}/{branch}\n".encode())
            from dsv.config import RepoConfig

            atomic_write_bytes(os.path.join(tmp, "config.json"), RepoConfig().to_json_bytes())
            # The repository appears all at once: a crash leaves no half-made .dsv.
            os.rename(tmp, layout.dsv)
            fsync_dir(layout.root)
        except FileExistsError:
            raise RepositoryExistsError(layout.dsv) from None
        except OSError as err:
            raise StorageError("create repository in", layout.root, err) from err
        return cls(layout.root)

    # -- settings ------------------------------------------------------------------

    def author(self) -> tuple[str, str]:
        """``(name, email)`` for new commits: environment, then config, then the login name."""
        # As in git, the environment overrides the config.
        name = os.environ.get("DSV_AUTHOR_NAME") or os.environ.get("GIT_AUTHOR_NAME") or self.settings.user_name
        email = os.environ.get("DSV_AUTHOR_EMAIL") or os.environ.get("GIT_AUTHOR_EMAIL") or self.settings.user_email
        if not name:
            try:
                import getpass

                name = getpass.getuser()
            except (KeyError, OSError):
                name = "unknown"
        if not email:
            email = f"{name}@{hostname()}"
        return name, email

    def set_config(self, updates: dict[str, Any]) -> None:
        """Change config values given as ``{"user.name": "Ada"}`` and save the file."""
        from pydantic import ValidationError

        from dsv.base.errors import UsageError
        from dsv.config import SETTINGS, RepoConfig

        for key in updates:
            if key not in SETTINGS:
                raise UsageError(f"unknown setting {key!r}", hint="known: " + ", ".join(SETTINGS))
        with FileLock(self.layout.config + ".lock", timeout=self.settings.lock_timeout):
            # Re-read under the lock so a concurrent 'dsv config' is not lost.
            current = RepoConfig.from_json_bytes(read_bytes(self.layout.config), what=f"config {self.layout.config}")
            data = current.model_dump()
            for key, value in updates.items():
                section, _, field = key.partition(".")
                data[section][field] = value
            try:
                new = RepoConfig.model_validate(data, strict=False)
            except ValidationError as err:
                key, value = next(iter(updates.items())) if len(updates) == 1 else ("", None)
                what = _EXPECTED.get(key)
                if what is None:
                    raise UsageError(f"invalid value: {err.errors()[0]['msg']}") from err
                raise UsageError(f"invalid value {value!r} for {key}", hint=f"{key} takes {what}") from None
            timeout = new.core.lock_timeout
            if not 0 <= timeout < float("inf"):  # (NaN fails this too; JSON has no infinity)
                raise UsageError(f"invalid value {updates.get('core.lock_timeout')!r} for core.lock_timeout", hint=f"core.lock_timeout takes {_EXPECTED['core.lock_timeout']}")
            self._write_config(new)
        self._config = new
        self._config_bytes = new.to_json_bytes()
        self._settings = None

    def _write_config(self, new: "RepoConfig") -> None:
        """Publish ``config.json``; mode 0600 when it holds a credential, so other users cannot read it."""
        atomic_write_bytes(self.layout.config, new.to_json_bytes(), mode=0o600 if new.has_secrets() else 0o644)
        if new.has_secrets():
            try:
                os.chmod(self.layout.config, 0o600)  # (the umask may have narrowed it further; never widen)
            except OSError:
                pass

    def update_config(self, change: "Callable[[RepoConfig], RepoConfig]") -> "RepoConfig":
        """Apply ``change`` to the current config under ``config.json.lock`` and save it (remote add/remove)."""
        from dsv.config import RepoConfig

        with FileLock(self.layout.config + ".lock", timeout=self.settings.lock_timeout):
            current = RepoConfig.from_json_bytes(read_bytes(self.layout.config), what=f"config {self.layout.config}")
            new = change(current)
            self._write_config(new)
        self._config = new
        self._config_bytes = new.to_json_bytes()
        self._settings = None
        return new

    def upgrade_format(self) -> None:
        """Raise a format-1 repository to format 2 before the first object is written (§13).

        Format-2 readers read everything format 1 wrote, so the upgrade is only the
        gate in ``config.json``; afterwards a dsv that knows only format 1 refuses
        the repository instead of misreading version-2 packs and manifests.
        """
        if self.format_version >= REPOSITORY_FORMAT:
            return
        from dsv.config import RepoConfig

        with FileLock(self.layout.config + ".lock", timeout=self.settings.lock_timeout):
            current = RepoConfig.from_json_bytes(read_bytes(self.layout.config), what=f"config {self.layout.config}")
            if current.format < REPOSITORY_FORMAT:
                new = current.model_copy(update={"format": REPOSITORY_FORMAT})
                self._write_config(new)
                current = new
        self._config = current
        self._config_bytes = current.to_json_bytes()
        self._settings = None
        self.format_version = REPOSITORY_FORMAT

    def write_lock(self, *, wait: bool = True) -> FileLock:
        """The lock every command writing objects or the working tree holds (``wait=False``: try once)."""
        return FileLock(self.layout.write_lock, timeout=0.0 if not wait else self.settings.lock_timeout)

    def ignore_rules(self) -> IgnoreRules | None:
        """The root ``.dsvignore`` rules."""
        return load_ignore(self.root)

    # -- stat cache ----------------------------------------------------------------

    def load_statcache(self, head_commit: str | None) -> StatCache:
        """The stat cache for ``head_commit``, rebuilt from its manifest if stale."""
        cache = statcache.load(self.layout.statcache)
        if cache is not None and cache.commit == head_commit:
            return cache
        if head_commit is None:
            return StatCache(None, None)
        from dsv.manifest import read_manifest  # lazy: pyarrow only when rebuilding
        from dsv.worktree.statcache import cache_from_table

        commit = self.history.commit(head_commit)
        return cache_from_table(head_commit, commit.manifest, read_manifest(self.store, commit.manifest).table())

    def monitor_session(self, cache: StatCache) -> "Session | None":
        """With ``core.fsmonitor`` on: what the daemon says changed since ``cache`` was settled (``None``: off)."""
        if not self.settings.fsmonitor:
            return None
        from dsv.worktree.fsmonitor import begin
        from dsv.worktree.ignore import IGNORE_FILE

        return begin(self.root, self.layout.dsv, cache.identity, ignore_file=IGNORE_FILE)

    def save_statcache(self, cache: StatCache) -> None:
        """Write the stat cache (best effort: a failure only costs speed later)."""
        try:
            cache.identity = statcache.save(self.layout.statcache, cache)
        except StorageError:
            cache.identity = None
