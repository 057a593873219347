"""The broker of the embedded setup: kombu's filesystem transport, with message files that
appear whole.

kombu writes each message file in place, and a consumer polling the folder can move a file the
producer has created but not yet written: it reads an empty message, and the worker dies with
"Unrecoverable error: JSONDecodeError" (seen under bench/load.py). Here the producer writes
under a name consumers skip and renames it into place, which is atomic.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # The name kombu's consumer sorts (arrival order) and matches (".<queue>.msg").
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
