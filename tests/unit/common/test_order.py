"""A batch's events in offset order per partition, whatever order the consumer gave."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.common.kafka import InboundMessage
from services.common.order import in_offset_order


def message(topic: str, partition: int, offset: int) -> InboundMessage:
    return InboundMessage(topic, partition, offset, None, None, [])


def coordinates(batch: list[InboundMessage]) -> list[tuple[str, int, int]]:
    return [(m.topic, m.partition, m.offset) for m in batch]


def test_a_partitions_events_are_put_in_offset_order_in_their_own_places() -> None:
    batch = [message("a", 0, 105), message("b", 0, 7), message("a", 0, 103), message("a", 1, 2)]
    assert coordinates(in_offset_order(batch)) == [
        ("a", 0, 103),
        ("b", 0, 7),
        ("a", 0, 105),
        ("a", 1, 2),
    ]


def test_an_ordered_batch_is_handed_back_as_it_is() -> None:
    batch = [message("a", 0, 1), message("a", 1, 9), message("a", 0, 2)]
    assert all(x is y for x, y in zip(in_offset_order(batch), batch, strict=True))


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2), st.integers(0, 50)),
        max_size=30,
    )
)
def test_each_partition_ascends_and_nothing_is_lost_or_moved_between_partitions(
    raw: list[tuple[str, int, int]],
) -> None:
    batch = [message(*c) for c in raw]
    ordered = in_offset_order(batch)
    assert sorted(coordinates(ordered)) == sorted(raw)
    assert [(m.topic, m.partition) for m in ordered] == [(t, p) for t, p, _ in raw]
    for key in {(t, p) for t, p, _ in raw}:
        offsets = [m.offset for m in ordered if (m.topic, m.partition) == key]
        assert offsets == sorted(offsets)
