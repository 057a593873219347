"""The embedded broker (kombu's filesystem transport with atomic message files): a consumer
polling as fast as it can, while a producer writes, gets every message whole."""

import threading

import pytest
from kombu import Connection, Consumer, Producer, Queue

from imageclass.celery import app

MESSAGES = 400


def options(folder):
    return {
        "data_folder_in": str(folder), "data_folder_out": str(folder),
        "processed_folder": str(folder), "store_processed": False, "polling_interval": 0,
    }  # fmt: skip


@pytest.mark.parametrize("repeat", range(5))
def test_a_fast_consumer_never_reads_a_half_written_message(tmp_path, repeat):
    queue = Queue("race")
    received, errors = [], []
    transport = "imageclass.broker:Transport"
    with Connection("filesystem://", transport=transport, transport_options=options(tmp_path)) as consuming:
        with Consumer(consuming, [queue], callbacks=[lambda body, message: (received.append(body), message.ack())], accept=["json"]):

            def produce():
                with Connection("filesystem://", transport=transport, transport_options=options(tmp_path)) as producing:
                    producer = Producer(producing)
                    for n in range(MESSAGES):
                        producer.publish({"n": n, "padding": "x" * 20_000}, routing_key="race", declare=[queue], serializer="json")

            producer = threading.Thread(target=produce)
            producer.start()
            while len(received) < MESSAGES and not errors:
                try:
                    consuming.drain_events(timeout=5)
                except Exception as exc:  # what kombu's own transport raises here: JSONDecodeError
                    errors.append(exc)
            producer.join()
    assert errors == []
    assert sorted(body["n"] for body in received) == list(range(MESSAGES))


def test_the_app_uses_it_for_the_embedded_broker():
    assert app.connection_for_write().transport_cls == "imageclass.broker:Transport"
