"""Union-find (disjoint sets) over ``0..n-1``: consensus clusters, tiles' linked pieces."""
from typing import List


class UnionFind:
    """Disjoint sets with path compression; the lower root stays a root (deterministic).

    Args:
        n: number of elements.
    """

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        """The root of ``x``'s set."""
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: int, y: int) -> int:
        """Join the sets of ``x`` and ``y``; return the root of the joined set."""
        rx, ry = self.find(x), self.find(y)
        lo, hi = min(rx, ry), max(rx, ry)
        self.parent[hi] = lo
        return lo

    def groups(self) -> List[List[int]]:
        """The sets, each in increasing order, ordered by their smallest element."""
        groups = {}
        for i in range(len(self.parent)):
            groups.setdefault(self.find(i), []).append(i)
        return list(groups.values())
