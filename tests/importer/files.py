"""Test helpers: PharmCAT example outputs (copies in reference/pharmcat/, provenance there) and fragments of
them."""
from __future__ import annotations

import copy
import json
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "pharmcat"
EXAMPLE1 = REFERENCE / "pharmcat.example.phenotype.json"     # Sample_1: CYP2D6 *1/*3 (outside), HLA-B *15:02/*57:01
EXAMPLE2 = REFERENCE / "pharmcat.example2.phenotype.json"    # Sample_2: CYP2C19 *2/*2, CYP2D6/HLA no call
OUTSIDE_CALLS = REFERENCE / "pharmcat.example.outsideCall.tsv"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def with_diplotypes(doc: dict, gene: str, labels_phenotypes: list[tuple[str, str, str | None]]) -> dict:
    """``doc`` with the gene's source diplotypes replaced, as PharmCAT writes several it cannot tell apart (each a
    copy of the gene's first source diplotype with another label, phenotype and activity score)."""
    doc = copy.deepcopy(doc)
    report = doc["geneReports"][gene]
    template = report["sourceDiplotypes"][0]
    report["callSource"] = "MATCHER"
    report["sourceDiplotypes"] = []
    for label, phenotype, score in labels_phenotypes:
        d = copy.deepcopy(template)
        d.update(label=label, phenotypes=[phenotype], activityScore=score, lookupKey=[score or phenotype])
        report["sourceDiplotypes"].append(d)
    return doc
