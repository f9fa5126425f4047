"""The gateway <-> shard contract, sans I/O: operations as types (`ops`), frames (`wire`), and
the stored message record (`records`). Gateway, shard and supervisor all import it, so the
sides cannot drift apart."""

from gortms.protocol.ops import *  # noqa: F401,F403
from gortms.protocol.monitor import *  # noqa: F401,F403
from gortms.protocol.records import *  # noqa: F401,F403
from gortms.protocol.wire import *  # noqa: F401,F403
