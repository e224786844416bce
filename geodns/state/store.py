"""The ``StateStore`` interface: where the live table lives, and how to open one.

Two backends implement it: ``memory://`` (one process, the embedded default) and
``redis://`` (shared by many DNS servers and checkers).  DNS servers never call a
store on the query path; a ``SnapshotKeeper`` loads snapshots from it in the
background and the query path reads the keeper's snapshot.

The contract both backends keep (tests run it against both):

- Every change to the table increments one integer *version* and wakes every
  ``changes()`` feed, so a reader can tell "something changed" without diffing.
- Version 0 means the store has never been seeded (or was wiped, e.g. Redis
  restarted empty).  Only ``seed()`` creates the version; other writes to an
  unseeded store land but are not published, so a checker reporting into an
  empty Redis cannot make readers swap to an empty table.
- ``load()`` returns the table as of exactly one version.  Stored data is
  validated as the config is (``codec.load_cluster``): an entry that is
  missing or invalid is left out and named in ``Snapshot.problems``, never
  raised as an outage; the keeper keeps its last good value.
- Writes are atomic: concurrent writers never lose each other's changes.
- Observation reports bump the version only when a verdict changes (see
  ``table.notable_change``); RTT drift is picked up by the keeper's periodic
  resync.  Snapshots never hold an observation that had expired when loaded,
  but a snapshot ages, so the policy layer still compares ``expires`` with now.
- Leases (``publish_lease``, ``renew_lease``): one per cluster, holding everything its
  discovery agent registered.  Publishing replaces the cluster's registrations and bumps
  the version when they changed (or the lease had lapsed); a renewal only pushes ``expires``
  and bumps only a lapsed lease.  So the keeper must re-read before a lease it holds
  lapses (it does: ``SnapshotKeeper._until_first_expiry``).  A lease is kept
  ``table.LEASE_KEEP`` seconds past its expiry, then forgotten.
- Load readings (``report_load``) are kept per (source, cluster, endpoint) until
  they expire, like observations; an operator's reading always bumps the version,
  a checker's only when it moves by ``table.LOAD_NOTABLE`` or more.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence

from ..config.model import ClusterSpec, EndpointSpec, IPAddress
from ..errors import ConfigError, Problem
from .model import AdminState, Cluster, Lease, LoadReport, Observation, Snapshot


class StateError(KeyError):
    """An admin write named a cluster or endpoint the table does not have (or already has).

    A ``KeyError`` so callers can treat it as "not found", with a readable
    ``str()`` (plain ``KeyError`` quotes its message).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreUnavailable(Exception):
    """The store cannot be reached right now; the one error callers need for an outage.

    The keeper answers it by keeping its last snapshot; the admin API by a 503.
    """


class StateStore(abc.ABC):
    """The live table of clusters, endpoints, weights, drains and observations."""

    async def connect(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Open connections; raise ``StoreUnavailable`` if the store cannot be reached now.

        Optional: every method connects on first use.  A store that failed to
        connect stays usable and tries again on the next call.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections; feeds from ``changes()`` end."""

    async def risks(self) -> list[str]:
        """How this store could lose our keys behind our back, in words (logged at start); [] if none known."""
        return []

    @abc.abstractmethod
    async def seed(
        self, specs: Iterable[ClusterSpec], overwrite: bool = False, base: Mapping[str, Cluster] | None = None
    ) -> int:
        """Put the config's clusters into the table; return the version after.

        Without ``overwrite`` the table keeps what operators changed at runtime
        (admin states, weights, registered endpoints and clusters) and takes the
        config-owned fields (region, priority, min_healthy, check, probes) from
        the specs.  ``base``, the caller's last good snapshot, stands in for
        clusters the store lost or holds invalid, and restores the whole table
        when the store is unseeded (Redis restarted empty) or lost its index
        (``table.seed_plan``).  With ``overwrite`` the table becomes exactly
        the config.  Every cluster of the result is in the index afterwards.
        Bumps the version only if something changed (or the store was unseeded).
        """

    @abc.abstractmethod
    async def load(self) -> Snapshot:
        """The whole table at one version, without expired observations."""

    @abc.abstractmethod
    def changes(self) -> AsyncGenerator[int, None]:
        """Yield the current version on subscription, then the version after each change.

        Yielding the current version first lets a reader subscribe, then load,
        without missing a change made in between.  Versions may be coalesced.
        Raises ``StoreUnavailable`` when the feed breaks.
        """

    # Admin writes: each is atomic, bumps the version and returns the version after.

    @abc.abstractmethod
    async def set_weight(self, cluster: str, weight: int, endpoint: str | IPAddress | None = None) -> int:
        """Set a cluster's weight, or one endpoint's when ``endpoint`` is given."""

    @abc.abstractmethod
    async def set_admin(self, cluster: str, state: AdminState | str, endpoint: str | IPAddress | None = None) -> int:
        """Drain (DRAINED), undrain (ACTIVE), force up or force down a cluster or an endpoint."""

    @abc.abstractmethod
    async def add_endpoint(self, cluster: str, spec: EndpointSpec) -> int:
        """Register an endpoint; ``StateError`` if the cluster already has that address."""

    @abc.abstractmethod
    async def remove_endpoint(self, cluster: str, address: str | IPAddress) -> int:
        """Deregister an endpoint."""

    @abc.abstractmethod
    async def add_cluster(self, spec: ClusterSpec) -> int:
        """Add a cluster; ``StateError`` if one with that name exists."""

    @abc.abstractmethod
    async def remove_cluster(self, name: str) -> int:
        """Remove a cluster and its endpoints (observations about it expire on their own)."""

    # Checker writes.

    @abc.abstractmethod
    async def report(self, observations: Sequence[Observation]) -> None:
        """Record checkers' observations, replacing each checker's previous one per endpoint."""

    @abc.abstractmethod
    async def report_load(self, reports: Sequence[LoadReport]) -> int:
        """Record load readings, replacing each source's previous one per cluster/endpoint; the version after."""

    # Discovery agents' writes.

    @abc.abstractmethod
    async def publish_lease(self, lease: Lease) -> int:
        """Replace ``lease.cluster``'s lease and registrations; the version after."""

    @abc.abstractmethod
    async def renew_lease(self, cluster: str, agent: str, renewed: float, expires: float) -> bool:
        """Push the cluster's lease to ``expires``; False when the store holds none (publish it again:
        the store was wiped or the lease forgotten)."""

    @abc.abstractmethod
    async def drop_lease(self, cluster: str) -> int:
        """Forget the cluster's lease and registrations at once (an operator retiring a cluster)."""


def open_store(url: str) -> StateStore:
    """The backend for a ``store:`` URL: ``memory://``, ``redis://``, ``rediss://`` (TLS), ``unix://``
    or Redis Sentinel (``redis+sentinel://``, ``rediss+sentinel://``, ``sentinel://``)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if scheme in ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "sentinel"):
        from .redis import RedisStore

        return RedisStore(url)
    raise ConfigError(
        [
            Problem(
                "store",
                None,
                f"store: unsupported URL scheme '{scheme}'; use memory:// or redis:// (or redis+sentinel://)",
            )
        ]
    )


def redact_url(url: str) -> str:
    """A store URL fit for logs and the status API: the password replaced by ***."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
