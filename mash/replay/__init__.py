"""``mash replay``: copy Kafka records between topics and JSONL files, exactly.

Sources: a topic (all partitions or some; an offset range; a time range by broker
timestamp, located with ``offsets_for_times``) or a JSONL file. Targets: a topic or a
JSONL file (format in :mod:`mash.jsonl`). Keys, values and headers are copied
byte for byte. Writing is rate-limited on request and resumable: a checkpoint file holds
the last position done per source partition (or the last line of a file source) and, for
a file target, its length at that moment, so a resumed copy neither skips nor repeats a
line. A resumed copy into a topic may re-send what was in flight when it stopped; the
services' inbox absorbs those (same event ids).

One module per part, the pure ones small: :mod:`~mash.replay.selection` (which records,
the offset range of a partition), :mod:`~mash.replay.checkpoint` (how far it got),
:mod:`~mash.replay.sources` (topic or file), :mod:`~mash.replay.sinks` (file or topics),
and :mod:`~mash.replay.copying` (:func:`run_replay`: the I/O around them). Import from
here: these names are the package's interface.
"""

from mash.replay.checkpoint import Checkpoint, default_checkpoint_path
from mash.replay.copying import (
    Pacer,
    ReplayOptions,
    ReplayResult,
    checkpoint_path_for,
    publish_records,
    refuse_inbound,
    run_replay,
)
from mash.replay.selection import Selection, parse_instant, partition_bounds
from mash.replay.sources import TopicSource

__all__ = [
    "Checkpoint",
    "Pacer",
    "ReplayOptions",
    "ReplayResult",
    "Selection",
    "TopicSource",
    "checkpoint_path_for",
    "default_checkpoint_path",
    "parse_instant",
    "partition_bounds",
    "publish_records",
    "refuse_inbound",
    "run_replay",
]
