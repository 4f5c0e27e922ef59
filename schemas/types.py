"""The type registry: which CloudEvents ``ce_type`` each contract model travels as."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from schemas.base import ContractModel
from schemas.events import (
    Contact,
    DeadLetter,
    Decision,
    Feedback,
    QueueItem,
    Routed,
    SchoolNotification,
    SlaBreach,
)
from schemas.inbound import (
    CaseStatus,
    PoliceNotification,
    PractitionerDecision,
    QueueUpdate,
    Referral,
)

__all__ = ["CE_TYPES", "MODELS", "ce_type_of", "model_of"]

CE_TYPES: Mapping[type[ContractModel], str] = MappingProxyType(
    {
        # Inbound (docs/contract.md, "Inbound topics").
        PoliceNotification: "uk.gov.mash.police-notification.v1",
        Referral: "uk.gov.mash.referral.v1",
        PractitionerDecision: "uk.gov.mash.practitioner-decision.v1",
        QueueUpdate: "uk.gov.mash.queue-update.v1",
        CaseStatus: "uk.gov.mash.case-status.v1",
        # Internal and outbound.
        Contact: "uk.gov.mash.contact.v1",
        Decision: "uk.gov.mash.decision.v1",
        QueueItem: "uk.gov.mash.queue-item.v1",
        Routed: "uk.gov.mash.routed.v1",
        Feedback: "uk.gov.mash.feedback.v1",
        SchoolNotification: "uk.gov.mash.school-notification.v1",
        SlaBreach: "uk.gov.mash.sla-breach.v1",
        DeadLetter: "uk.gov.mash.dead-letter.v1",
    }
)
"""Model class -> ce_type. One entry per event model; nested models have none."""

MODELS: Mapping[str, type[ContractModel]] = MappingProxyType(
    {ce_type: model for model, ce_type in CE_TYPES.items()}
)
"""ce_type -> model class: the inverse of :data:`CE_TYPES`."""


def ce_type_of(model_cls: type[ContractModel]) -> str:
    """Return the ce_type that ``model_cls`` is published as.

    Raises ``KeyError`` naming the class when it is not an event model (e.g. ``Child``).
    """
    try:
        return CE_TYPES[model_cls]
    except KeyError:
        raise KeyError(f"{model_cls.__name__} has no ce_type: it is not an event model") from None


def model_of(ce_type: str) -> type[ContractModel]:
    """Return the model class registered for ``ce_type``; ``KeyError`` if there is none."""
    return MODELS[ce_type]
