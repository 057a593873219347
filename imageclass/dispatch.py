"""Queueing jobs for the workers: tasks are sent by name, so a sender never imports a task's
module (nor the TensorFlow that the worker's side loads), and a request whose job cannot be
queued undoes what it changed and answers 503."""

from contextlib import contextmanager

from imageclass.celery import app
from imageclass.middleware import ServiceUnavailable


class QueueUnavailable(ServiceUnavailable):
    """A job could not be queued; what its request had changed was undone."""


def send(task: str, *args):
    app.send_task(task, args=[str(arg) for arg in args])


@contextmanager
def enqueue_or_undo(queue: str, undo):
    """Run the block that queues a job; when the broker (or Redis) fails in it, call `undo` and
    raise QueueUnavailable naming `queue`."""
    try:
        yield
    except Exception as exc:  # kombu and redis-py raise many kinds when the broker is away
        undo()
        raise QueueUnavailable(
            f"The {queue} queue is unavailable; please try again shortly."
        ) from exc
