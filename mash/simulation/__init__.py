"""The simulator behind ``mash simulate``: realistic synthetic MASH traffic, seeded and
reproducible.

:func:`generate` is pure: a seed, a request (start, length, count, bad-message rate), the
calibration (``mash/simulation.yaml``) and the hub topology in; a list of Kafka records out.
Same inputs, byte-identical records: nothing reads the clock or the environment.

What it makes:

- households (one to four children, some unborn) at addresses spread over the topology's
  postcode districts, a few out of area (B90, B43) or of no fixed abode (``people``);
- police notifications (mostly domestic abuse, DASH mostly standard, ``police``) and
  referrals from the census sources (``referrals``), valid against the contract
  (``schemas``), binary or structured mode;
- repeat contacts about children already seen in the period (repeat incidents build up in
  a household over simulated time);
- bad messages at a configured rate, each built to be dead-lettered for one reason
  (``bad_messages``).

The figures live in the calibration (``calibration``), none in the generator
(``generator``, drawing through one ``run``). People are obviously fictional: given names
from a fixed list ("Testchild", "Sampleboy"), family names "Example-...", NHS numbers from
the 999 test range with valid check digits, phone numbers in Ofcom's drama range, e-mail
addresses under ``.example``.

Callers outside the package import from here; the modules import each other directly.
"""

from mash.simulation.calibration import DEFAULT_CALIBRATION, Calibration, load_calibration
from mash.simulation.generator import generate
from mash.simulation.run import DEFAULT_START, SimRecord, SimulationRequest

__all__ = [
    "DEFAULT_CALIBRATION",
    "DEFAULT_START",
    "Calibration",
    "SimRecord",
    "SimulationRequest",
    "generate",
    "load_calibration",
]
