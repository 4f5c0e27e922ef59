"""The mash-router event contract: pydantic models (the source of truth), the ce_type
registry, CloudEvents Kafka helpers and the exported JSON Schema.

Modules: :mod:`schemas.base` (base model, validated types, code lists),
:mod:`schemas.inbound` (what upstream publishes), :mod:`schemas.events` (what our
services publish), :mod:`schemas.types` (ce_type registry), :mod:`schemas.cloudevents`
(decode/validate/encode), :mod:`schemas.examples` (synthetic payloads),
:mod:`schemas.export` (``python -m schemas.export [--check]``).
"""
