"""Random and mutated inputs for a codec target, from a seeded `random.Random` (repeatable).

A mutated input starts from a valid frame the codec's own encoder made (so it
gets past the preamble and checksum often enough to reach the parsers behind
them) and applies one to four of: bit flips, byte changes, inserts, deletes,
truncation, a chunk repeated (deep nesting, long runs), a splice of two valid
frames, frames glued together with noise between them, a token of the
protocol (preamble, start and end bytes) dropped in, and a length field (or
any one or two bytes) set to an extreme.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

EXTREMES_1 = (0x00, 0x01, 0x02, 0x7F, 0x80, 0xFE, 0xFF)
EXTREMES_2 = (0x0000, 0x0001, 0x00FF, 0x0100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)


@dataclass(frozen=True)
class Seed:
    """A valid input, and where its length fields are: (offset, size in bytes, "big" or "little")."""

    data: bytes
    lengths: tuple[tuple[int, int, str], ...] = ()


@dataclass
class Mutator:
    seeds: tuple[Seed, ...]
    tokens: tuple[bytes, ...] = ()
    max_size: int = 4096  # of a random input; mutated ones may grow past it a little
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> bytes:
        """One input: about one in five random, the rest mutated seeds."""
        r = self.rng.random()
        if r < 0.1 or not self.seeds:
            return self.random_bytes()
        if r < 0.2:
            return self.token_soup()
        return self.mutated()

    def random_bytes(self) -> bytes:
        size = self._size()
        return self.rng.randbytes(size)

    def token_soup(self) -> bytes:
        """Protocol tokens and random bytes mixed: garbage that looks like frames starting."""
        rng, out = self.rng, bytearray()
        size = self._size()
        while len(out) < size:
            if self.tokens and rng.random() < 0.4:
                out += rng.choice(self.tokens)
            else:
                out += rng.randbytes(rng.randint(1, 8))
        return bytes(out)

    def _size(self) -> int:
        rng = self.rng
        # mostly short, sometimes long enough to test the buffer bounds
        return rng.choice((rng.randint(0, 16), rng.randint(0, 256), rng.randint(0, self.max_size)))

    def mutated(self) -> bytes:
        rng = self.rng
        seed = rng.choice(self.seeds)
        data = bytearray(seed.data)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            data = self._mutate_once(data, seed)
        return bytes(data)

    def _mutate_once(self, data: bytearray, seed: Seed) -> bytearray:
        rng = self.rng
        op = rng.randrange(12)
        changed = self._edit_bytes(op, data) if op < 6 else self._edit_frames(op, data, seed)
        if changed is None:  # the op did not fit this input: a random byte appended
            data.append(rng.randrange(256))
            return data
        return changed

    def _edit_bytes(self, op: int, data: bytearray) -> bytearray | None:
        """Ops 0 to 5: bits and bytes changed, inserted, deleted or repeated; None when the op
        does not fit the input (nothing to change in an empty one)."""
        rng = self.rng
        n = len(data)
        if op == 0 and n:  # flip one to eight bits
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # set a byte
            data[rng.randrange(n)] = rng.choice((rng.randrange(256),) + EXTREMES_1)
        elif op == 2:  # insert bytes
            at = rng.randint(0, n)
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and n:  # delete bytes
            at = rng.randrange(n)
            del data[at:at + rng.randint(1, 16)]
        elif op == 4 and n:  # truncate
            del data[rng.randrange(n):]
        elif op == 5 and n:  # repeat a chunk (long runs, deep nesting)
            at = rng.randrange(n)
            chunk = data[at:at + rng.randint(1, 8)]
            data[at:at] = chunk * rng.choice((2, 2, 16, 16, 256, 2048))
        else:
            return None
        return data

    def _edit_frames(self, op: int, data: bytearray, seed: Seed) -> bytearray | None:
        """Ops 6 to 11: other frames spliced or glued on, protocol tokens and extreme lengths
        dropped in, chunks swapped; None when the op does not fit the input."""
        rng = self.rng
        n = len(data)
        if op == 6:  # splice: the head of this frame, the tail of another
            other = rng.choice(self.seeds).data
            data = data[:rng.randint(0, n)] + other[rng.randint(0, len(other)):]
        elif op == 7:  # frames back to back, with or without noise between them
            other = rng.choice(self.seeds).data
            noise = rng.randbytes(rng.randint(0, 8)) if rng.random() < 0.5 else b""
            data = data + noise + other if rng.random() < 0.5 else bytearray(other) + noise + data
        elif op == 8 and self.tokens:  # a protocol token somewhere
            at = rng.randint(0, n)
            data[at:at] = rng.choice(self.tokens)
        elif op == 9 and seed.lengths:  # a length field to an extreme
            offset, size, order = rng.choice(seed.lengths)
            if offset + size <= n:
                value = rng.choice(EXTREMES_1 if size == 1 else EXTREMES_2 + (rng.randrange(1 << 8 * size),))
                data[offset:offset + size] = (value % (1 << 8 * size)).to_bytes(size, order)  # type: ignore[arg-type]
        elif op == 10 and n >= 2:  # any one or two bytes to an extreme: an unknown length field
            at = rng.randrange(n - 1)
            data[at:at + 2] = rng.choice(EXTREMES_2).to_bytes(2, rng.choice(("big", "little")))
        elif op == 11 and n:  # swap two chunks
            a, b = sorted((rng.randrange(n), rng.randrange(n)))
            size = rng.randint(1, 8)
            data[a:a + size], data[b:b + size] = data[b:b + size], data[a:a + size]
        else:
            return None
        return data
