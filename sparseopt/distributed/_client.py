"""Finding the Dask scheduler to run on, with clear errors when there is none."""

DEFAULT_BROADCAST_LIMIT = 256 * 2**20


def _distributed():
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError(
            "this needs dask.distributed: pip install 'sparseopt[dist]'"
        ) from exc
    return distributed


def resolve_client(client, *, require=False):
    """The :class:`distributed.Client` to compute on, or None for dask's default scheduler.

    Parameters
    ----------
    client : None, "default", Client or str
        ``None``: the active distributed client if there is one, otherwise
        dask's default (local threads) -- unless ``require``.  A ``Client``:
        that client, which must be connected.  A string: the address of a
        running scheduler (``"tcp://host:8786"``) to connect to, within dask's
        ``distributed.comm.timeouts.connect``.
    require : bool
        Raise when no distributed scheduler is available.
    """
    if client is None:
        try:
            distributed = _distributed()
        except ImportError:
            if require:
                raise
            return None
        try:
            return distributed.default_client()
        except ValueError:
            if require:
                raise RuntimeError(
                    "no Dask scheduler: start one (dask.distributed.Client() or "
                    "LocalCluster) or pass client= an address or a Client"
                ) from None
            return None
    distributed = _distributed()
    if isinstance(client, str):
        try:
            return distributed.Client(client, set_as_default=False)
        except OSError as exc:
            raise RuntimeError(
                f"no Dask scheduler reachable at {client!r}: {exc}"
            ) from exc
    if isinstance(client, distributed.Client):
        if client.status != "running":
            raise RuntimeError(
                f"the Dask client is not connected to a scheduler (status {client.status!r});"
                " start the cluster or pass another client"
            )
        return client
    raise TypeError(
        f"client must be None, a dask.distributed.Client or a scheduler address, "
        f"got {type(client).__name__}"
    )


def compute(*collections, client=None):
    """``dask.compute`` on ``client`` (or dask's default scheduler when None)."""
    import dask

    if client is None:
        return dask.compute(*collections)
    return dask.compute(*collections, scheduler=client)


def persist(collection, client=None):
    """Persist ``collection`` in the workers' memory (or locally without a client)."""
    if client is None:
        return collection.persist()
    return client.persist(collection)


def broadcast_limit(client=None):
    """Largest operand size (bytes) worth copying to every worker.

    A quarter of the smallest worker memory limit of ``client`` (or of the
    active client), and 256 MiB without a cluster or memory limits.
    """
    try:
        c = resolve_client(client)
    except (ImportError, RuntimeError):
        c = None
    if c is None:
        return DEFAULT_BROADCAST_LIMIT
    limits = [w.get("memory_limit") or 0
              for w in c.scheduler_info().get("workers", {}).values()]
    limits = [m for m in limits if m > 0]
    return min(limits) // 4 if limits else DEFAULT_BROADCAST_LIMIT
