"""The simulator's one entry point, :func:`generate`: when contacts arrive and from whom,
which are repeats, then each drawn by its kind (``police``, ``referrals``) and the bad
messages after them (``bad_messages``).

The order of draws is the output's identity: slots first (sources, then times), contacts in
receive order, bad messages last. Reordering any of it changes every record after it.
"""

from __future__ import annotations

from mash.simulation.bad_messages import bad_message
from mash.simulation.calibration import Calibration, pick
from mash.simulation.police import police_notification
from mash.simulation.referrals import referral
from mash.simulation.run import SimRecord, SimulationRequest, SimulationRun, Slot
from services.common.topology import Topology


def generate(
    request: SimulationRequest, calibration: Calibration, topology: Topology
) -> list[SimRecord]:
    """The simulated messages, in order of their (simulated) receive time.

    Pure: the same request, calibration and topology always give byte-identical records.
    """
    run = SimulationRun(request, calibration, topology)
    count = request.count
    if count is None:
        count = round(calibration.contacts_per_week * request.weeks)
    sources = [pick(run.rng, calibration.sources) for _ in range(count)]
    slots = [Slot(i, s, run.slot_time(s)) for i, s in enumerate(sources)]
    slots.sort(key=lambda s: (s.at, s.index))
    records = [_contact(run, n, slot) for n, slot in enumerate(slots)]
    bad_rate = calibration.bad_messages.rate
    if request.bad_rate is not None:
        bad_rate = request.bad_rate
    records += [bad_message(run, n) for n in range(round(count * bad_rate))]
    records.sort(key=lambda r: (r.record.timestamp or 0, r.record.key or b""))
    return records


def _contact(run: SimulationRun, n: int, slot: Slot) -> SimRecord:
    """Contact ``n``: a repeat about a household already contacted at the calibration's
    share, then a police notification or a referral by the slot's source."""
    rng = run.rng
    world = run.world
    if world.contacted and rng.random() < run.cal.repeats.share:
        slot.repeat = True
        slot.household = rng.choice(world.contacted)
    if slot.source == "6":
        return police_notification(run, n, slot)
    return referral(run, n, slot)
