"""A deliberately coarse world map for the status page, drawn as inline SVG.

A few dozen (lon, lat) points per land mass: enough to recognise where a
region or a place is, small enough to ship inside the page (no external
assets, no CDN, works on an air-gapped operator laptop).
"""

from __future__ import annotations

from functools import cache

# Equirectangular, cropped to the inhabited latitudes.
LAT_TOP, LAT_BOTTOM = 78.0, -56.0
WIDTH = 900
HEIGHT = round(WIDTH * (LAT_TOP - LAT_BOTTOM) / 360.0)

LAND: tuple[tuple[tuple[float, float], ...], ...] = (
    # North America
    (
        (-168, 65),
        (-160, 71),
        (-140, 70),
        (-125, 72),
        (-95, 72),
        (-80, 73),
        (-62, 66),
        (-55, 52),
        (-66, 45),
        (-76, 38),
        (-81, 31),
        (-80, 25),
        (-82, 29),
        (-90, 30),
        (-97, 27),
        (-97, 21),
        (-90, 21),
        (-87, 15),
        (-83, 9),
        (-78, 8),
        (-85, 11),
        (-92, 15),
        (-105, 20),
        (-110, 24),
        (-112, 31),
        (-117, 33),
        (-124, 40),
        (-124, 48),
        (-133, 56),
        (-150, 60),
        (-165, 60),
    ),
    # Greenland
    ((-55, 60), (-44, 60), (-20, 70), (-18, 78), (-60, 78), (-72, 77), (-58, 70)),
    # South America
    (
        (-78, 8),
        (-72, 12),
        (-62, 11),
        (-50, 2),
        (-35, -5),
        (-39, -15),
        (-48, -26),
        (-58, -38),
        (-65, -42),
        (-68, -52),
        (-73, -53),
        (-75, -45),
        (-72, -30),
        (-70, -18),
        (-76, -14),
        (-81, -5),
        (-80, 0),
    ),
    # Eurasia
    (
        (-10, 36),
        (-9, 43),
        (-1, 46),
        (-4, 48),
        (2, 51),
        (8, 54),
        (10, 58),
        (5, 62),
        (15, 69),
        (28, 71),
        (40, 67),
        (60, 70),
        (80, 73),
        (100, 77),
        (120, 73),
        (140, 72),
        (160, 70),
        (180, 69),
        (180, 65),
        (170, 60),
        (160, 55),
        (156, 51),
        (140, 53),
        (135, 43),
        (129, 35),
        (126, 38),
        (122, 40),
        (121, 31),
        (117, 24),
        (108, 21),
        (106, 10),
        (100, 13),
        (103, 1),
        (98, 8),
        (97, 17),
        (92, 22),
        (88, 22),
        (80, 15),
        (77, 8),
        (72, 20),
        (67, 25),
        (57, 25),
        (56, 27),
        (50, 30),
        (48, 29),
        (52, 24),
        (56, 26),
        (59, 22),
        (52, 16),
        (43, 13),
        (35, 28),
        (34, 31),
        (36, 36),
        (27, 37),
        (26, 41),
        (23, 36),
        (20, 40),
        (19, 42),
        (13, 45),
        (18, 40),
        (15, 38),
        (12, 44),
        (8, 44),
        (3, 43),
        (-2, 37),
    ),
    # Great Britain, Ireland
    ((-5, 50), (1, 51), (2, 53), (-2, 56), (-2, 58), (-5, 58), (-5, 55), (-3, 54), (-5, 52)),
    ((-10, 52), (-6, 52), (-6, 55), (-10, 55)),
    # Africa, Madagascar
    (
        (-17, 21),
        (-10, 30),
        (-6, 36),
        (10, 37),
        (11, 33),
        (20, 31),
        (32, 31),
        (34, 28),
        (43, 12),
        (51, 12),
        (42, -1),
        (40, -10),
        (35, -24),
        (32, -29),
        (20, -35),
        (18, -30),
        (12, -17),
        (13, -6),
        (9, -1),
        (9, 4),
        (4, 6),
        (-8, 4),
        (-13, 8),
        (-17, 14),
    ),
    ((44, -25), (47, -25), (50, -15), (49, -12), (44, -17)),
    # Japan, Sumatra, Borneo, New Guinea
    ((130, 31), (135, 34), (140, 35), (142, 40), (141, 45), (144, 44), (140, 41), (136, 37), (131, 34)),
    ((95, 5), (98, 4), (104, -2), (106, -6), (102, -4), (95, 3)),
    ((109, 1), (111, -3), (116, -4), (119, 1), (117, 7), (113, 3)),
    ((131, -1), (141, -3), (150, -10), (143, -9), (138, -8), (132, -4)),
    # Australia, New Zealand
    (
        (114, -22),
        (114, -34),
        (117, -35),
        (124, -33),
        (132, -31),
        (138, -35),
        (141, -38),
        (147, -38),
        (150, -37),
        (153, -28),
        (153, -25),
        (146, -19),
        (145, -15),
        (142, -11),
        (141, -17),
        (136, -12),
        (131, -11),
        (126, -14),
        (122, -18),
    ),
    ((172, -35), (175, -37), (178, -38), (174, -41), (171, -46), (167, -46), (170, -42)),
)


def project(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) to SVG (x, y) on a WIDTH x HEIGHT canvas."""
    lat = max(LAT_BOTTOM, min(LAT_TOP, lat))
    x = (lon + 180.0) / 360.0 * WIDTH
    y = (LAT_TOP - lat) / (LAT_TOP - LAT_BOTTOM) * HEIGHT
    return round(x, 1), round(y, 1)


@cache  # constant: drawn once, not on every page refresh
def land_paths() -> str:
    """The land masses as one SVG path's ``d`` attribute."""
    parts = []
    for shape in LAND:
        points = [project(lat, lon) for lon, lat in shape]
        parts.append("M" + " L".join(f"{x},{y}" for x, y in points) + " Z")
    return " ".join(parts)


@cache
def graticule() -> str:
    """Every 30 degrees of longitude and latitude, as a path's ``d``."""
    parts = []
    for lon in range(-150, 180, 30):
        x, _ = project(0, lon)
        parts.append(f"M{x},0 L{x},{HEIGHT}")
    for lat in (60, 30, 0, -30):
        _, y = project(lat, 0)
        parts.append(f"M0,{y} L{WIDTH},{y}")
    return " ".join(parts)


Box = tuple[float, float, float, float]  # x, y, width, height


def overlap(a: Box, b: Box) -> float:
    """The area two boxes share (0 when they do not touch)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(
    anchors: list[tuple[float, float, float, float]],
    keep_clear: list[Box],
    width: float = WIDTH,
    height: float = HEIGHT,
) -> list[Box]:
    """A box for each label (anchor x, y, label width, label height), overlapping no other and no ``keep_clear``.

    Greedy, in the order given: beside the anchor (right, then left; above, then
    below), then stacked further up or down, where the caller draws a leader
    line.  When no spot is clear (a crowded map), the one overlapping least.
    Boxes stay on the canvas.
    """
    placed: list[Box] = []
    for x, y, w, h in anchors:
        spots: list[Box] = [
            (x + 15, y - h - 4, w, h),
            (x + 15, y + 4, w, h),
            (x - 15 - w, y - h - 4, w, h),
            (x - 15 - w, y + 4, w, h),
            (x - w / 2, y - h - 15, w, h),
            (x - w / 2, y + 15, w, h),
        ]
        for k in range(1, 8):
            for side_x in (x + 15, x - 15 - w):
                spots += [(side_x, y - h - 4 - k * (h + 2), w, h), (side_x, y + 4 + k * (h + 2), w, h)]
        best, best_cost = None, float("inf")
        for bx, by, bw, bh in spots:
            box = (min(max(bx, 0.0), width - bw), min(max(by, 0.0), height - bh), bw, bh)
            cost = sum(overlap(box, other) for other in placed + keep_clear)
            if cost < best_cost:
                best, best_cost = box, cost
                if cost == 0:
                    break
        placed.append(best)  # type: ignore[arg-type]  # a box: ``spots`` is never empty
    return placed
