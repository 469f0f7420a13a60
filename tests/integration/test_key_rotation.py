"""Rotating the address key: after `abri keys rotate`, the old key can be dropped and every
address still decrypts; before it, dropping the old key would lose them."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from capacity import registry
from capacity.audit import CLI
from capacity.crypto import Address, AddressCipher, AddressKeyError
from capacity.rekey import rotate_all
from tests.conftest import TEST_KEY, World


async def test_rotate_then_drop_the_old_key(world: World) -> None:
    await world.operator("Refuges", "shelter_operator")
    fac = await world.facility(
        "Refuges", "Refuge R", address=Address(street="Rue Secrète 9", city="Namur")
    )
    new = Fernet.generate_key()
    only_new = AddressCipher([new])
    with pytest.raises(AddressKeyError):  # not yet rotated: the new key alone cannot read it
        await registry.read_address(
            world.db, fac.facility.id, actor=CLI, now=world.clock.now(), cipher=only_new
        )
    both = AddressCipher([new, TEST_KEY.encode()])  # newest first
    assert await rotate_all(world.db, both, actor=CLI, now=world.clock.now()) == 1
    got = await registry.read_address(
        world.db, fac.facility.id, actor=CLI, now=world.clock.now(), cipher=only_new
    )
    assert got is not None and got.street == "Rue Secrète 9"
    assert (
        await rotate_all(world.db, only_new, actor=CLI, now=world.clock.now()) == 1
    )  # again: fine
