"""One vocabulary of lesion sites across datasets, so a metadata model trained on one can score
another.

Each dataset writes sites its own way: HAM10000's ``localization`` (face, back, acral ...),
ISIC's ``anatom_site_general`` (head/neck, posterior torso, palms/soles ...; ISIC 2020 also plain
``torso``) and PAD-UFES-20's ``region`` (FOREARM, NOSE ...). The shared vocabulary is ISIC's,
the coarsest that every dataset maps onto:

================  ====================================================  ==========================
shared site       HAM10000                                              PAD-UFES-20
================  ====================================================  ==========================
head/neck         face, scalp, ear, neck                                face, nose, scalp, ear, neck, lip
upper extremity   upper extremity, hand                                 arm, forearm, hand
lower extremity   lower extremity, foot                                 thigh, foot
anterior torso    chest, abdomen                                        chest, abdomen
posterior torso   back                                                  back
torso             trunk                                                 —
palms/soles       acral                                                 —
oral/genital      genital                                               —
================  ====================================================  ==========================

A model keeps the sites it was trained on (HAM10000's recipes are unchanged). A site it did not
see is read through this table: as the model's own site with the same shared name (``chest`` for
a model that knows ``anterior torso``), as the one model site that maps to it (``back`` for
``posterior torso``), or as the enclosing ``torso``; otherwise it is ``unknown``, and the row's
note says so.
"""
from __future__ import annotations

SHARED_SITES = ("head/neck", "upper extremity", "lower extremity", "anterior torso", "posterior torso",
                "lateral torso", "torso", "palms/soles", "oral/genital")

#: Each dataset's site names (lower case) -> the shared site. Shared names map to themselves.
TO_SHARED: dict[str, str] = {
    **{site: site for site in SHARED_SITES},
    # HAM10000 localization
    "face": "head/neck", "scalp": "head/neck", "ear": "head/neck", "neck": "head/neck",
    "hand": "upper extremity", "foot": "lower extremity",
    "chest": "anterior torso", "abdomen": "anterior torso", "back": "posterior torso",
    "trunk": "torso", "acral": "palms/soles", "genital": "oral/genital",
    # PAD-UFES-20 region
    "nose": "head/neck", "lip": "head/neck", "arm": "upper extremity", "forearm": "upper extremity",
    "thigh": "lower extremity",
}

#: Shared sites inside a larger one.
ENCLOSING = {"anterior torso": "torso", "posterior torso": "torso", "lateral torso": "torso"}


def shared_site(site: str) -> str | None:
    """The shared name of a dataset's site (lower case), or None when the table has no entry."""
    return TO_SHARED.get(site)


def as_known_site(site: str, known: tuple[str, ...]) -> str | None:
    """``site`` as one of the ``known`` sites of a model, through the shared vocabulary; None
    when it cannot be read as one of them without guessing."""
    if site in known:
        return site
    shared = shared_site(site)
    if shared is None:
        return None
    for name in (shared, ENCLOSING.get(shared)):
        if name in known:
            return name
    same = [other for other in known if shared_site(other) == shared]
    return same[0] if len(same) == 1 else None
