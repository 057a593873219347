"""The addresses of the servers that `make run` embeds (imageclass.embedded starts them; the
settings point the app at them). Settings import this module, so it imports nothing."""


def embedded_uri(port: int) -> str:
    """The address of an embedded server on this machine, without retryable writes: the engine
    keeps each one's reply for 30 minutes and scans them all on every write (sorting 10,000 once
    it holds that many), so a busy `make run` slowed down as it ran. A single local server has no failover to retry across."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"


def embedded_redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"
