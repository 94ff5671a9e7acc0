# Test-time views (--tta) and the tiling of large images.
d4_views = [  # the 8 flips and quarter turns
    dict(), dict(flip='horizontal'), dict(flip='vertical'),
    dict(rot90=1), dict(rot90=2), dict(rot90=3),
    dict(rot90=1, flip='horizontal'), dict(rot90=1, flip='vertical'),  # transposes
]
# Identity, both flips and the half turn: the U-Nets' --tta (4x one view; 70-80 % of
# the 8's gain on fold 0 and two held-out-type arms, BENCHMARKS.md "Cheaper view sets").
flip_views = [dict(), dict(flip='horizontal'), dict(flip='vertical'), dict(rot90=2)]
# The 3rd-place solution's 15 views (--tta-views full): 18-20x one view's time for
# the Mask R-CNN (the 2x view alone 3-5x).
tta_views_full = d4_views + [
    dict(scale=0.75), dict(scale=1.25), dict(scale=1.5), dict(scale=2.0),
    dict(shift=(20, 20, 20)), dict(shift=(-20, -20, -20)), dict(shift=(20, 0, -20)),
]
# The default (--tta): identity, both flips, the half turn and 1.25x, 5.2-5.6x one
# view, chosen among subsets of the 15 for most of their gain under 6x (BENCHMARKS.md,
# "Cheaper view sets"). The identity first: it is the cost unit of the benchmarks.
tta_views = flip_views + [dict(scale=1.25)]
# Views are made by the TTA model from the test pipeline's image; their label
# maps are merged by an order-independent consensus (README, "TTA").
tta_model = dict(type='NucleusTTAModel', views=tta_views, match_iou=0.5, vote_thr=0.5)
# Images whose longer side exceeds tile_above are predicted in tiles: memory
# bounded by the tile, no cap on nuclei per image. 1400 keeps every DSB2018
# image (at most 1040 x 1388) whole, as the solution predicted them.
tile = dict(size=512, overlap=128, tile_above=1400)
