"""What the simulated maker sells, and through whom: models, distributors and their batches.

Everything here is fictional but shaped like the real trade:

* **Models** carry Type Allocation Codes (the first 8 IMEI digits) under reporting bodies that
  really issue TACs: 35 (BABT, United Kingdom) and 86 (TAF, China). Each model has two TACs,
  as phones built in two factories do; the numbers themselves are made up.
* **Distributors** each serve one sales region from one home country. The ones in transit
  countries of the gray-market routes this demo models (a Jebel Ali free-zone trader in the UAE,
  Turkey, Lebanon, Russia, China, a Colon free-zone trader in Panama) are `leaky`: one or two
  of their batches were sold on to buyers in restricted places, and 60-80 % of such a batch's
  devices end up there (the rest are used where they were sold).
* **Batches** are one model and SKU, made in one month of 2021 (March to August, before the
  demo policy's 2021-09-15 start) and shipped 2-5 weeks later. Their names follow the pattern
  `B<year>-<month>-<distributor country>-<sequence>`, e.g. `B2021-07-AE-03`.

`build_catalog(seed)` draws the batches from the seed, so a different seed gives a different
trade history; the model and distributor tables are fixed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate

from regionlock.sim.draws import Draws

# Devices a model's production can number: 6-digit serial numbers (SNR) per TAC, from a
# per-model starting point, for each of its TACs.
_SNR_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Model:
    """A phone model: its name, IMEI prefixes (TACs), SKU prefix and storage options in GB."""

    name: str
    code: str
    tacs: tuple[str, ...]
    storage: tuple[int, ...]
    weight: float
    snr_start: int

    def capacity(self) -> int:
        """How many distinct IMEIs the model's TACs leave room for."""
        return len(self.tacs) * (_SNR_LIMIT - self.snr_start)

    def imei_payload(self, n: int) -> str:
        """The 14 digits (TAC + SNR) of the model's `n`-th device; TACs take turns."""
        if n >= self.capacity():
            raise ValueError(f"model {self.name} has no IMEI left for device {n}")
        tac = self.tacs[n % len(self.tacs)]
        return f"{tac}{self.snr_start + n // len(self.tacs):06d}"


MODELS: tuple[Model, ...] = (
    Model("Meridian A12", "A12", ("35291611", "35291612"), (64, 128), 30, 104_000),
    Model("Meridian A52", "A52", ("35402917", "35402918"), (128, 256), 30, 211_500),
    Model("Meridian S21", "S21", ("35133271", "86081204"), (128, 256, 512), 20, 30_000),
    Model("Meridian Note 10", "N10", ("35617709", "86081217"), (256, 512), 12, 57_250),
    Model("Meridian Tab 8", "T08", ("35904413", "35904414"), (64, 128), 8, 12_000),
)


@dataclass(frozen=True, slots=True)
class Distributor:
    """A fictional distributor: where it is based, the sales region it buys for, its volume.

    `diverts_to` lists where a leaky distributor's diverted devices go (restricted place codes
    with weights); it is empty for the others.
    """

    name: str
    country: str
    sales_region: str
    share: float
    diverts_to: tuple[tuple[str, float], ...] = ()

    @property
    def leaky(self) -> bool:
        return bool(self.diverts_to)


DISTRIBUTORS: tuple[Distributor, ...] = (
    Distributor("Rheinland Mobilfunk Vertrieb GmbH", "DE", "EEA", 15),
    Distributor("Loire Telecom Distribution SAS", "FR", "EEA", 12),
    Distributor("Albion Handset Supply Ltd", "GB", "GB", 7),
    Distributor("Great Lakes Wireless Supply Inc", "US", "US", 9),
    Distributor("Sierra Pacific Devices LLC", "US", "US", 8),
    Distributor("Deccan Mobile Distribution Pvt Ltd", "IN", "IN", 11),
    Distributor("Paulista Eletronicos Ltda", "BR", "BR", 7),
    Distributor("Najd Mobile Distribution Co", "SA", "SA", 3),
    Distributor("Meridian Direct Online Store", "NL", "GLOBAL", 3),
    # Transit countries: the gray-market routes of the 2021 case.
    Distributor("Anatolia Mobil Dagitim AS", "TR", "TR", 6, (("IR", 0.6), ("SY", 0.4))),
    Distributor("Gulf Crescent General Trading FZE", "AE", "AE", 5, (("IR", 0.7), ("SD", 0.3))),
    Distributor("Cedar Coast Trading SARL", "LB", "LB", 1.5, (("SY", 1.0),)),
    Distributor("Volga Telecom Trade LLC", "RU", "RU", 7, (("UA-43", 0.75), ("UA-40", 0.25))),
    Distributor("Pearl River Export Co Ltd", "CN", "CN", 4, (("KP", 1.0),)),
    Distributor("Isthmus Free Zone Traders SA", "PA", "PA", 1.5, (("CU", 1.0),)),
)

# The SKU suffix of each sales region's variant (chargers, bands and firmware differ).
SKU_VARIANT = {
    "EEA": "EU",
    "GB": "UK",
    "US": "US",
    "IN": "IN",
    "BR": "BR",
    "SA": "ME",
    "AE": "ME",
    "LB": "ME",
    "TR": "TR",
    "RU": "RU",
    "CN": "CN",
    "PA": "LA",
    "GLOBAL": "GL",
}


@dataclass(frozen=True, slots=True)
class Batch:
    """One shipment: a model and SKU made over a few days and shipped to one distributor.

    `divert_share` is the share of its devices sold on into restricted places (0 for most).
    """

    name: str
    distributor: Distributor
    model: Model
    sku: str
    made_from: date
    made_days: int
    shipped: date
    weight: float
    divert_share: float


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every batch of the simulated year, with cumulative weights for drawing one per device."""

    batches: tuple[Batch, ...]
    cum_weights: tuple[float, ...]

    def pick(self, draws: Draws) -> Batch:
        """A batch, each in proportion to its weight."""
        return draws.weighted(self.batches, self.cum_weights)


_MONTHS = range(3, 9)  # March to August 2021


def build_catalog(seed: int) -> Catalog:
    """The batches of every distributor, drawn from `seed` (same seed, same catalog)."""
    draws = Draws("catalog", seed)
    model_cum = tuple(accumulate(m.weight for m in MODELS))
    sequence: dict[tuple[int, str], int] = defaultdict(int)
    batches: list[Batch] = []
    for distributor in DISTRIBUTORS:
        # One or two batches a month; each batch's share of the distributor's volume varies.
        plan = [month for month in _MONTHS for _ in range(1 + draws.below(2))]
        raw = [0.5 + draws.random() for _ in plan]
        leaky: set[int] = set()
        if distributor.leaky:
            # One leaky batch, two for the larger distributors, never the first month's.
            count = 2 if distributor.share >= 5 else 1
            while len(leaky) < min(count, len(plan) - 1):
                leaky.add(1 + draws.below(len(plan) - 1))
        for i, month in enumerate(plan):
            key = (month, distributor.country)
            sequence[key] += 1
            model = draws.weighted(MODELS, model_cum)
            storage = draws.choice(model.storage)
            made_from = date(2021, month, 1 + draws.below(20))
            made_days = 3 + draws.below(6)
            shipped = made_from + timedelta(days=made_days + 14 + draws.below(22))
            name = f"B2021-{month:02d}-{distributor.country}-{sequence[key]:02d}"
            batches.append(
                Batch(
                    name=name,
                    distributor=distributor,
                    model=model,
                    sku=f"M{model.code}-{storage}G-{SKU_VARIANT[distributor.sales_region]}",
                    made_from=made_from,
                    made_days=made_days,
                    shipped=shipped,
                    weight=distributor.share * raw[i] / sum(raw),
                    divert_share=0.6 + 0.2 * draws.random() if i in leaky else 0.0,
                )
            )
    return Catalog(tuple(batches), tuple(accumulate(b.weight for b in batches)))
