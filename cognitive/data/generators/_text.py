"""Shared surface material for the generators: names, a phrase picker that records which template
variant was used, and number formatting.

Surface diversity is by design: every sentence a generator writes is drawn from a list of variants,
and `Phrases` records the variant ids so the pipeline can report how many distinct templates a task
type produced (`problem_spec["template"]`).
"""

from __future__ import annotations

import random

FEMALE = (
    "Sarah Amara Mei Lucia Priya Fatima Olga Chloe Ingrid Yuki Zainab Elena Nadia Sofia Aisha Hannah "
    "Leila Maya Rosa Ines Freya Keiko Anya Grace Nora Tamar Esme Lina Carmen Ada Iris Noor Vera Ruth "
    "Thandi Ayesha Kalani Marisol Bianca Greta Hiroko Jun Daria Selin Emeka Zoe Paula Mira"
).split()
MALE = (
    "Tom Omar Kenji Diego Ravi Lars Mateo Kwame Ivan Ahmed Liam Jonas Felix Arjun Tariq Hugo Pablo "
    "Sami Chen Dmitri Kofi Marco Emil Yusuf Noah Oscar Rafael Anton Hassan Luca Tomas Malik Bruno "
    "Sven Jamal Hamid Kai Nikhil Pedro Andre Wei Rohan Elias Isaac Theo Milan Dario Joaquin"
).split()
NAMES = FEMALE + MALE
PRONOUNS = {"f": ("she", "her", "her"), "m": ("he", "him", "his")}


def person(rng: random.Random, exclude: set[str] | frozenset = frozenset()) -> tuple[str, str, str, str]:
    """A random name with its pronouns: (name, subject, object, possessive)."""
    while True:
        gender = "f" if rng.random() < 0.5 else "m"
        name = rng.choice(FEMALE if gender == "f" else MALE)
        if name not in exclude:
            return (name, *PRONOUNS[gender])


def people(rng: random.Random, k: int) -> list[str]:
    """k distinct names."""
    return rng.sample(NAMES, k)


class Phrases:
    """Picks phrasing variants with a seeded RNG and remembers which ones (for template statistics)."""

    def __init__(self, rng: random.Random, prefix: str = ""):
        self.rng = rng
        self.prefix = prefix
        self.used: list[str] = []

    def pick(self, key: str, variants):
        i = self.rng.randrange(len(variants))
        self.used.append(f"{self.prefix}{key}{i}")
        return variants[i]

    def template_id(self) -> str:
        """The sequence of variant ids, e.g. 'shopping.0.start2 shopping.0.add1 ...': equal for two
        examples built from the same sentence templates in the same order (stats count both distinct
        sequences and distinct variants)."""
        return " ".join(self.used)


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def join_names(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def clock(minutes: int) -> str:
    """Minutes after midnight as a 24-hour clock time, e.g. 545 -> '9:05'."""
    return f"{minutes // 60}:{minutes % 60:02d}"
