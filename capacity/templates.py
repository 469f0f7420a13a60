"""Policy templates: onboard a new temporary place in minutes during a surge (REQUIREMENTS R06).

A template gives the kind, a default access policy, the secret-address flag (on, except for
public night shelters) and a default handover protocol. Admins override any field.
"""

from __future__ import annotations

import msgspec

from placement.policy import AccessPolicy, AdmissionWindow


class Template(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    name: str
    title: str
    kind: str
    secret_address: bool
    policy: AccessPolicy
    handover_protocol: str
    stale_after_minutes: int | None = None
    pools: tuple[tuple[str, str, int], ...] = ()  # (label, unit kind, places per unit)


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="ipv_refuge",
            title="IPV refuge (secret address)",
            kind="refuge",
            secret_address=True,
            policy=AccessPolicy(
                genders=["female", "nonbinary"],
                accepts_children=True,
                max_children=4,
                max_boy_age=12,
                specialisations=["ipv", "family_violence"],
                languages=["fr", "nl", "en"],
                max_stay_nights=90,
                beds_for_households=False,
            ),
            handover_protocol=(
                "Call the intake phone with the reference code. Meeting point agreed by phone; "
                "the refuge collects the household. Bring ID if available, medication, "
                "children's essentials."
            ),
            pools=(("Family rooms", "family_room", 4), ("Single rooms", "room", 1)),
        ),
        Template(
            name="requisitioned_crisis_hotel",
            title="Requisitioned crisis hotel",
            kind="crisis_hotel",
            secret_address=True,
            policy=AccessPolicy(
                low_threshold=False,
                accepts_undocumented=True,
                cost="free",
                accepts_children=True,
                languages=["fr", "nl", "en"],
                max_stay_nights=30,
                beds_for_households=False,
                rooms_for_households=True,  # a large family in adjoining rooms
            ),
            handover_protocol=(
                "Call the intake phone with the reference code; the coordinator gives the "
                "check-in arrangement. No address is given by Abri."
            ),
            stale_after_minutes=6 * 60,
            pools=(("Double rooms", "room", 2), ("Family rooms", "family_room", 4)),
        ),
        Template(
            name="cpas_emergency_flat",
            title="CPAS/OCMW emergency flat",
            kind="cpas_place",
            secret_address=True,
            policy=AccessPolicy(
                accepts_undocumented=False,
                cost="income_based",
                accepts_children=True,
                languages=["fr"],
                max_stay_nights=60,
                beds_for_households=False,
            ),
            handover_protocol=(
                "Call the CPAS on-call social worker with the reference code; keys are handed "
                "over at the CPAS or by the on-call worker."
            ),
            stale_after_minutes=24 * 60,
            pools=(("Emergency flats", "family_room", 4),),
        ),
        Template(
            name="night_shelter",
            title="Low-threshold night shelter",
            kind="night_shelter",
            secret_address=False,
            policy=AccessPolicy(
                low_threshold=True,
                accepts_undocumented=True,
                cost="free",
                accepts_children=False,
                max_stay_nights=1,
                admission_hours=[AdmissionWindow(start="19:00", end="02:00")],
                specialisations=["homelessness"],
                languages=["fr", "nl", "en"],
                accepts_pets=True,
            ),
            handover_protocol="Come to the door during intake hours; give the reference code.",
            stale_after_minutes=6 * 60,
            pools=(("Dormitory beds", "bed", 1),),
        ),
        Template(
            name="caw_safe_house",
            title="CAW safe house (studios)",
            kind="safe_house",
            secret_address=True,
            policy=AccessPolicy(
                accepts_undocumented=False,
                cost="income_based",
                accepts_children=True,
                specialisations=["ipv", "family_violence"],
                languages=["nl", "en"],
                max_stay_nights=180,
                referral_required_from=["police", "helpline", "cpas", "caw", "fjc", "sac"],
                beds_for_households=False,
            ),
            handover_protocol=(
                "Warm referral: the requester calls the intake phone; the CAW worker meets the "
                "household at a neutral meeting point."
            ),
            pools=(("Studios", "family_room", 3),),
        ),
        Template(
            name="requisitioned_other",
            title="Other requisitioned place (youth hostel, B&B, training centre)",
            kind="other",
            secret_address=True,
            policy=AccessPolicy(
                accepts_undocumented=True,
                cost="free",
                accepts_children=True,
                languages=["fr", "nl", "en"],
                max_stay_nights=30,
                beds_for_households=False,
                rooms_for_households=True,
            ),
            handover_protocol=(
                "Call the intake phone with the reference code; the coordinator on duty gives "
                "the arrival arrangement. No address is given by Abri."
            ),
            stale_after_minutes=6 * 60,
            pools=(("Rooms", "room", 2), ("Family rooms", "family_room", 4)),
        ),
    )
}
