"""The peer benchmark's agreement check (run by scripts/test.sh; stdlib only)."""

import datetime
import decimal
import unittest

from peer_bench import geomean, median, normalized, rows_disagreement


class AgreementTest(unittest.TestCase):
    def test_engines_types_and_order_do_not_matter(self):
        duckdb = normalized(
            [("A", decimal.Decimal("10.50"), datetime.date(1995, 3, 15), 3), ("B", None, None, 4)]
        )
        polars = normalized([("B", None, None, 4.0), ("A  ", 10.5000001, datetime.date(1995, 3, 15), 3)])
        self.assertIsNone(rows_disagreement(duckdb, polars))

    def test_a_different_value_row_count_or_width_is_named(self):
        rows = normalized([("A", 1.0), ("B", 2.0)])
        self.assertIn("no row like", rows_disagreement(rows, normalized([("A", 1.0), ("B", 2.5)])))
        self.assertIn("1 rows instead of 2", rows_disagreement(rows, rows[:1]))
        self.assertIn("columns", rows_disagreement(rows, normalized([("A",), ("B",)])))

    def test_nearly_equal_numbers_sorted_apart_still_match(self):
        # 0.004999999 rounds to 0.0, 0.005 to 0.01 (sorting keys): matched one by one.
        expected = normalized([(0.004999999, "x"), (0.003, "y")])
        actual = normalized([(0.005, "x"), (0.003, "y")])
        self.assertIsNone(rows_disagreement(expected, actual))

    def test_medians_and_geometric_means(self):
        self.assertEqual(median([3.0, 1.0, 2.0]), 2.0)
        self.assertAlmostEqual(geomean([1.0, 4.0]), 2.0)


if __name__ == "__main__":
    unittest.main()
