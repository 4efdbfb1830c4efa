"""Where simulated devices are: real cities, mobile networks, IP blocks, zones and locales.

Every row is a real-world fact, and `tests/sim/test_places.py` checks each one against the data
regionlock itself ships, so a row that our resolver would place elsewhere cannot slip in:

* **Cities**: coordinates of real city centres (WGS 84, rounded to 4 decimals, as published by
  GeoNames and Wikipedia), chosen at least ~10 km from any land border so that a position
  jittered by up to `GPS_JITTER_DEG` stays in the country. Cities next to a border were left
  out on purpose: Al Ain (on the Omani border), Shenzhen (Hong Kong), Kaesong (the DMZ),
  Kassala (Eritrea). Rome's point is Termini station, 4 km east of the Vatican.
* **Networks**: MCC-MNC pairs of each country's main operators, from ITU-T E.212 as listed on
  Wikipedia's "Mobile Network Codes in ITU region 2xx-7xx" pages (the same source as
  `data/mcc.csv`, see README-mcc.md). Most MNCs have no row of their own in mcc.csv because
  their MCC already names the country; the tests check that each pair resolves to the place.
  Some real pairs point to more than one territory (AT&T 310-410 also serves the US Virgin
  Islands, T-Mobile 310-260 Puerto Rico); they are kept, because that is what phones send.
* **IP blocks**: /24 blocks that the shipped RIR delegation data (PyPI `iptocc`) registers to
  the place's `ip_country`; the tests look up all 256 addresses of every block. They were
  picked from ranges of the countries' access providers, but only the registry country is
  part of the data and checked: no provider names are claimed.
* **Time zones** from the IANA tz database (one per city, the zone the city lies in);
  **locales** the usual ones of the place (a few of the expatriate languages too).

Crimea is two places, `UA-43` (Autonomous Republic of Crimea) and `UA-40` (Sevastopol), with
country `UA`: ISO 3166 and the sanctions instruments name them so, and so does the resolver.
Its networks are the operators that have run only in Crimea since 2014 (Volna 250-60, Win
Mobile 250-32, Sevmobile 250-33); Russian mainland operators do not serve the peninsula, so a
Russian SIM there roams on one of these. Its IP blocks are Russian-registered (`ip_country`
RU): Crimean providers reach the Internet through Russian carriers, and RU is the harder case
for the resolver (an IP registered to UA would only help it).
"""

from __future__ import annotations

from dataclasses import dataclass

# Up to this many degrees (about 1.7 km north-south) is added to a city's coordinates, per
# check-in, so that a fleet's positions are not all one point per city.
GPS_JITTER_DEG = 0.015


@dataclass(frozen=True, slots=True)
class City:
    """A real city: its centre and the IANA time zone it lies in."""

    name: str
    lat: float
    lon: float
    timezone: str


@dataclass(frozen=True, slots=True)
class Network:
    """A mobile network (PLMN) of a place, with its operator's name."""

    mcc: str
    mnc: str
    operator: str

    @property
    def plmn(self) -> str:
        """The "MCC-MNC" text form that check-ins may send."""
        return f"{self.mcc}-{self.mnc}"


@dataclass(frozen=True, slots=True)
class Place:
    """A country, or a subdivision where it matters (Crimea), with everything a device there sees.

    `code` is the place's key: an ISO 3166-1 alpha-2 code, or ISO 3166-2 for `UA-43`/`UA-40`.
    `ip_blocks` are the first three octets of /24 blocks registered to `ip_country`.
    """

    code: str
    country: str
    subdivision: str | None
    cities: tuple[City, ...]
    networks: tuple[Network, ...]
    ip_blocks: tuple[str, ...]
    locales: tuple[str, ...]
    ip_country: str = ""

    def __post_init__(self) -> None:
        if not self.ip_country:
            object.__setattr__(self, "ip_country", self.country)


def _cities(zone: str, *rows: tuple[str, float, float]) -> tuple[City, ...]:
    return tuple(City(name, lat, lon, zone) for name, lat, lon in rows)


def _nets(mcc: str, *rows: tuple[str, str]) -> tuple[Network, ...]:
    return tuple(Network(mcc, mnc, operator) for mnc, operator in rows)


# fmt: off
_PLACES = (
    # --- allowed: the sales regions and the transit countries --------------------------------
    Place(
        "DE", "DE", None,
        _cities("Europe/Berlin", ("Berlin", 52.5200, 13.4050), ("Munich", 48.1374, 11.5755),
                ("Hamburg", 53.5511, 9.9937), ("Cologne", 50.9375, 6.9603),
                ("Frankfurt", 50.1109, 8.6821), ("Leipzig", 51.3397, 12.3731)),
        _nets("262", ("01", "Telekom"), ("02", "Vodafone"), ("03", "O2 (Telefonica)")),
        ("79.200.10", "84.150.3", "91.20.5", "89.204.130"),
        ("de_DE", "de_DE", "de_DE", "en_US", "tr_TR"),
    ),
    Place(
        "FR", "FR", None,
        _cities("Europe/Paris", ("Paris", 48.8566, 2.3522), ("Lyon", 45.7640, 4.8357),
                ("Toulouse", 43.6047, 1.4442), ("Orleans", 47.9030, 1.9093),
                ("Rennes", 48.1173, -1.6778)),
        _nets("208", ("01", "Orange"), ("10", "SFR"), ("15", "Free Mobile"),
              ("20", "Bouygues Telecom")),
        ("90.45.12", "82.65.4", "176.140.5", "109.10.3"),
        ("fr_FR", "fr_FR", "fr_FR", "en_GB", "ar_MA"),
    ),
    Place(
        "IT", "IT", None,
        _cities("Europe/Rome", ("Rome", 41.9010, 12.5016), ("Milan", 45.4642, 9.1900),
                ("Turin", 45.0703, 7.6869), ("Bologna", 44.4949, 11.3426),
                ("Florence", 43.7696, 11.2558)),
        _nets("222", ("01", "TIM"), ("10", "Vodafone"), ("88", "WindTre"), ("50", "Iliad")),
        ("79.20.1", "93.40.2", "87.10.3", "151.40.1"),
        ("it_IT", "it_IT", "it_IT", "en_US"),
    ),
    Place(
        "ES", "ES", None,
        _cities("Europe/Madrid", ("Madrid", 40.4168, -3.7038), ("Zaragoza", 41.6488, -0.8891),
                ("Seville", 37.3891, -5.9845), ("Valladolid", 41.6523, -4.7245)),
        _nets("214", ("01", "Vodafone"), ("03", "Orange"), ("07", "Movistar")),
        ("83.40.1", "88.10.2", "90.165.1", "81.40.3"),
        ("es_ES", "es_ES", "es_ES", "ca_ES", "en_GB"),
    ),
    Place(
        "NL", "NL", None,
        _cities("Europe/Amsterdam", ("Amsterdam", 52.3676, 4.9041), ("Utrecht", 52.0907, 5.1214),
                ("Eindhoven", 51.4416, 5.4697), ("Arnhem", 51.9851, 5.8987)),
        _nets("204", ("04", "Vodafone"), ("08", "KPN"), ("16", "T-Mobile")),
        ("77.160.4", "84.25.1", "145.53.1"),
        ("nl_NL", "nl_NL", "en_US"),
    ),
    Place(
        "PL", "PL", None,
        _cities("Europe/Warsaw", ("Warsaw", 52.2297, 21.0122), ("Krakow", 50.0647, 19.9450),
                ("Lodz", 51.7592, 19.4560), ("Poznan", 52.4064, 16.9252)),
        _nets("260", ("01", "Plus"), ("02", "T-Mobile"), ("03", "Orange"), ("06", "Play")),
        ("83.10.1", "89.64.2", "31.0.3", "46.112.4"),
        ("pl_PL", "pl_PL", "en_US", "uk_UA"),
    ),
    Place(
        "SE", "SE", None,
        _cities("Europe/Stockholm", ("Stockholm", 59.3293, 18.0686),
                ("Uppsala", 59.8586, 17.6389), ("Orebro", 59.2753, 15.2134),
                ("Jonkoping", 57.7826, 14.1618)),
        _nets("240", ("01", "Telia"), ("02", "Tre"), ("07", "Tele2")),
        ("78.70.1", "90.230.2", "83.250.3"),
        ("sv_SE", "sv_SE", "en_US", "fa_IR"),
    ),
    Place(
        "GB", "GB", None,
        _cities("Europe/London", ("London", 51.5074, -0.1278), ("Birmingham", 52.4862, -1.8904),
                ("Manchester", 53.4808, -2.2426), ("Leeds", 53.8008, -1.5491)),
        _nets("234", ("10", "O2"), ("15", "Vodafone"), ("20", "Three"), ("30", "EE")),
        ("86.140.1", "82.10.2", "5.65.3", "81.100.4"),
        ("en_GB", "en_GB", "en_GB", "pl_PL", "en_IN"),
    ),
    Place(
        "US", "US", None,
        (City("New York", 40.7128, -74.0060, "America/New_York"),
         City("Atlanta", 33.7490, -84.3880, "America/New_York"),
         City("Chicago", 41.8781, -87.6298, "America/Chicago"),
         City("Dallas", 32.7767, -96.7970, "America/Chicago"),
         City("Denver", 39.7392, -104.9903, "America/Denver"),
         City("Los Angeles", 34.0522, -118.2437, "America/Los_Angeles")),
        (Network("310", "410", "AT&T"), Network("311", "480", "Verizon"),
         Network("310", "260", "T-Mobile")),
        ("73.15.1", "71.170.2", "99.10.1", "24.10.3"),
        ("en_US", "en_US", "en_US", "es_US"),
    ),
    Place(
        "TR", "TR", None,
        _cities("Europe/Istanbul", ("Istanbul", 41.0082, 28.9784), ("Ankara", 39.9334, 32.8597),
                ("Izmir", 38.4237, 27.1428), ("Bursa", 40.1885, 29.0610),
                ("Konya", 37.8746, 32.4932)),
        _nets("286", ("01", "Turkcell"), ("02", "Vodafone"), ("03", "Turk Telekom")),
        ("78.170.1", "85.100.1", "88.230.2", "176.40.3"),
        ("tr_TR", "tr_TR", "tr_TR", "en_US"),
    ),
    Place(
        "AE", "AE", None,
        _cities("Asia/Dubai", ("Dubai", 25.2048, 55.2708), ("Abu Dhabi", 24.4539, 54.3773),
                ("Sharjah", 25.3463, 55.4209)),
        _nets("424", ("02", "Etisalat"), ("03", "du")),
        ("94.200.1", "86.98.1", "5.30.2", "2.50.3"),
        ("ar_AE", "en_US", "en_IN", "fa_IR", "ur_PK"),
    ),
    Place(
        "SA", "SA", None,
        _cities("Asia/Riyadh", ("Riyadh", 24.7136, 46.6753), ("Jeddah", 21.4858, 39.1925),
                ("Medina", 24.5247, 39.5692)),
        _nets("420", ("01", "STC"), ("03", "Mobily"), ("04", "Zain")),
        ("94.96.1", "37.104.2", "51.36.3", "188.48.4"),
        ("ar_SA", "ar_SA", "en_US", "en_IN"),
    ),
    Place(
        "LB", "LB", None,
        _cities("Asia/Beirut", ("Beirut", 33.8938, 35.5018), ("Sidon", 33.5571, 35.3729),
                ("Jounieh", 33.9808, 35.6178)),
        _nets("415", ("01", "Alfa"), ("03", "Touch")),
        ("178.135.1", "94.187.2", "91.232.100"),
        ("ar_LB", "ar_LB", "fr_LB", "en_US"),
    ),
    Place(
        "RU", "RU", None,
        (City("Moscow", 55.7558, 37.6173, "Europe/Moscow"),
         City("Saint Petersburg", 59.9311, 30.3609, "Europe/Moscow"),
         City("Kazan", 55.7887, 49.1221, "Europe/Moscow"),
         City("Yekaterinburg", 56.8389, 60.6057, "Asia/Yekaterinburg"),
         City("Novosibirsk", 55.0084, 82.9357, "Asia/Novosibirsk")),
        _nets("250", ("01", "MTS"), ("02", "MegaFon"), ("99", "Beeline"), ("20", "Tele2")),
        ("5.3.3", "95.24.1", "178.64.2", "213.87.3", "37.144.4"),
        ("ru_RU", "ru_RU", "ru_RU", "en_US"),
    ),
    Place(
        "IN", "IN", None,
        _cities("Asia/Kolkata", ("Delhi", 28.6139, 77.2090), ("Mumbai", 19.0760, 72.8777),
                ("Bengaluru", 12.9716, 77.5946), ("Hyderabad", 17.3850, 78.4867),
                ("Pune", 18.5204, 73.8567)),
        (Network("404", "10", "Airtel Delhi"), Network("404", "45", "Airtel Karnataka"),
         Network("404", "20", "Vodafone Idea Mumbai"), Network("405", "872", "Jio Delhi")),
        ("49.36.1", "122.160.2", "117.200.3", "106.200.4"),
        ("en_IN", "en_IN", "hi_IN", "te_IN", "mr_IN"),
    ),
    Place(
        "BR", "BR", None,
        _cities("America/Sao_Paulo", ("Sao Paulo", -23.5505, -46.6333),
                ("Rio de Janeiro", -22.9068, -43.1729), ("Belo Horizonte", -19.9167, -43.9345),
                ("Brasilia", -15.7939, -47.8828)),
        _nets("724", ("05", "Claro"), ("06", "Vivo"), ("02", "TIM"), ("31", "Oi")),
        ("177.10.1", "189.30.2", "179.100.3", "201.20.4"),
        ("pt_BR", "pt_BR", "pt_BR", "en_US"),
    ),
    Place(
        "CN", "CN", None,
        _cities("Asia/Shanghai", ("Shanghai", 31.2304, 121.4737), ("Beijing", 39.9042, 116.4074),
                ("Guangzhou", 23.1291, 113.2644), ("Chengdu", 30.5728, 104.0668),
                ("Wuhan", 30.5928, 114.3055)),
        _nets("460", ("00", "China Mobile"), ("01", "China Unicom"), ("11", "China Telecom")),
        ("113.64.1", "116.20.2", "123.112.3", "111.10.4"),
        ("zh_CN", "zh_CN", "zh_CN", "en_US"),
    ),
    Place(
        "PA", "PA", None,
        _cities("America/Panama", ("Panama City", 8.9824, -79.5199), ("Colon", 9.3592, -79.9014),
                ("David", 8.4273, -82.4309), ("Santiago de Veraguas", 8.1000, -80.9833)),
        _nets("714", ("01", "Cable & Wireless"), ("02", "Movistar"), ("03", "Claro"),
              ("04", "Digicel")),
        ("200.46.1", "190.140.2", "186.74.3"),
        ("es_PA", "es_PA", "en_US", "zh_CN"),
    ),
    # --- restricted under the demo policy (gray-market-2021.toml) -----------------------------
    Place(
        "IR", "IR", None,
        _cities("Asia/Tehran", ("Tehran", 35.6892, 51.3890), ("Mashhad", 36.2605, 59.6168),
                ("Isfahan", 32.6546, 51.6680), ("Shiraz", 29.5918, 52.5837),
                ("Tabriz", 38.0800, 46.2919), ("Karaj", 35.8400, 50.9391)),
        _nets("432", ("11", "MCI (Hamrah-e Avval)"), ("35", "MTN Irancell"), ("20", "RighTel")),
        ("2.144.1", "5.112.2", "37.32.4"),
        ("fa_IR", "fa_IR", "fa_IR", "en_US", "az_IR"),
    ),
    Place(
        "SY", "SY", None,
        _cities("Asia/Damascus", ("Damascus", 33.5138, 36.2765), ("Aleppo", 36.2021, 37.1343),
                ("Homs", 34.7324, 36.7137), ("Hama", 35.1318, 36.7578),
                ("Latakia", 35.5317, 35.7900)),
        _nets("417", ("01", "Syriatel"), ("02", "MTN Syria")),
        ("5.0.1", "31.9.2", "82.137.200", "178.52.3"),
        ("ar_SY", "ar_SY", "ar_SY", "en_US"),
    ),
    Place(
        "CU", "CU", None,
        _cities("America/Havana", ("Havana", 23.1136, -82.3666),
                ("Santiago de Cuba", 20.0247, -75.8219), ("Camaguey", 21.3808, -77.9169),
                ("Santa Clara", 22.4069, -79.9647), ("Holguin", 20.8872, -76.2631)),
        _nets("368", ("01", "Cubacel (ETECSA)")),
        ("152.206.1", "169.158.2", "181.225.230", "200.55.140"),
        ("es_CU", "es_CU", "es_CU", "en_US"),
    ),
    Place(
        "KP", "KP", None,
        _cities("Asia/Pyongyang", ("Pyongyang", 39.0392, 125.7625),
                ("Hamhung", 39.9183, 127.5364), ("Pyongsong", 39.2464, 125.8717)),
        _nets("467", ("05", "Koryolink"), ("06", "Kangsong NET")),
        ("175.45.176", "175.45.177", "175.45.178"),
        ("ko_KP", "ko_KP", "ko_KP", "en_US"),
    ),
    Place(
        "SD", "SD", None,
        _cities("Africa/Khartoum", ("Khartoum", 15.5007, 32.5599), ("Omdurman", 15.6445, 32.4777),
                ("Wad Madani", 14.4012, 33.5199), ("El Obeid", 13.1843, 30.2167),
                ("Port Sudan", 19.6158, 37.2164)),
        _nets("634", ("01", "Zain"), ("02", "MTN Sudan"), ("07", "Sudani")),
        ("41.95.1", "196.29.170", "197.252.4", "102.120.1"),
        ("ar_SD", "ar_SD", "ar_SD", "en_US"),
    ),
    Place(
        "UA-43", "UA", "UA-43",
        # Inland towns: around the coastal ones (Yalta, Feodosia, Yevpatoria) the GPS jitter
        # reached the sea, where a fix counts less (offshore), which is not what phones there
        # report on a normal day.
        _cities("Europe/Simferopol", ("Simferopol", 44.9521, 34.1024),
                ("Krasnohvardiiske", 45.4982, 34.2972), ("Bilohirsk", 45.0544, 34.6022),
                ("Dzhankoi", 45.7086, 34.3933), ("Bakhchysarai", 44.7517, 33.8600)),
        _nets("250", ("60", "Volna mobile"), ("32", "Win Mobile")),
        ("5.3.3", "95.24.1", "178.64.2"),
        ("ru_RU", "ru_RU", "ru_RU", "uk_UA"),
        ip_country="RU",
    ),
    Place(
        "UA-40", "UA", "UA-40",
        # The residential south of the city rather than the centre on the bays, for the same
        # reason.
        _cities("Europe/Simferopol", ("Sevastopol", 44.5700, 33.5300)),
        _nets("250", ("33", "Sevmobile"), ("60", "Volna mobile"), ("32", "Win Mobile")),
        ("5.3.3", "95.24.1", "178.64.2"),
        ("ru_RU", "ru_RU", "ru_RU", "uk_UA"),
        ip_country="RU",
    ),
)
# fmt: on

PLACES: dict[str, Place] = {p.code: p for p in _PLACES}

# The jurisdictions the demo policy's company block names (checked against the policy file).
RESTRICTED: frozenset[str] = frozenset({"IR", "SY", "CU", "KP", "SD", "UA-43", "UA-40"})

# VPN exits: /24 blocks registered to each country, and how often each country is the exit
# (countries where commercial VPN services commonly put their servers; shares assumed).
VPN_EXITS: dict[str, tuple[str, ...]] = {
    "NL": ("5.79.70", "37.48.70"),
    "DE": ("88.198.20", "78.46.10"),
    "US": ("159.203.10", "104.131.5"),
    "SE": ("83.250.3", "90.230.2"),
    "CH": ("85.1.1", "178.192.2"),
}
VPN_EXIT_WEIGHTS: dict[str, float] = {"NL": 30, "US": 25, "DE": 20, "SE": 15, "CH": 10}
