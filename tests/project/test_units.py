"""Numbers for people (cnncalc/units.py, used by every view): three significant digits and a unit,
never an exponent."""
from cnncalc.units import fmt_time, hbytes, human


def test_three_digits_and_never_an_exponent():
    assert hbytes(1010 * 2**20) == "1,010 MiB"  # 1000-1023 of a binary unit: was '1.01e+03 MiB'
    assert hbytes(1023 * 2**20 + 2**19) == "1,024 MiB"  # rounds up, still below 1 GiB
    assert hbytes(2**30) == "1 GiB" and hbytes(1536 * 2**20) == "1.5 GiB" and hbytes(1000) == "1,000 B"
    assert human(999_700) == "1,000 K" and human(1_234_567) == "1.23 M" and human(12) == "12"
    assert fmt_time(0.9997) == "1,000 ms" and fmt_time(0.00123) == "1.23 ms" and fmt_time(5e-7) == "500 ns"
    for n in (0, 1, 999, 1000, 1023, 1024, 10**6, 10**9 + 7, 2**40, 2**62):
        for text in (hbytes(n), human(n), fmt_time(n / 1e6)):
            assert "e+" not in text and "e-" not in text, text
