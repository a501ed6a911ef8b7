//! Where archived messages go in a conversation's order. A conversation is
//! ordered by its own sequence, not by clocks: live messages are appended
//! in the order the server delivers them, and a page of the archive (which
//! is in the server's order) fills the gaps between the messages around it.
//! Timestamps stay what the server or our clock said, for display only.

/// Positions for the new messages of one conversation in one archive page.
///
/// `entries` are the page's messages of that conversation in archive
/// order: `Some(position)` for ones already stored, `None` for new ones.
/// `start` is the position just before the page; `end_after(a)` gives the
/// next stored position after `a` (or after `start`'s absence), bounding
/// the new ones at the end of the page. Returns one position per `None`,
/// in order; `None` there means "append" (the conversation is empty).
pub(crate) fn place(
    entries: &[Option<f64>],
    start: Option<f64>,
    mut end_after: impl FnMut(Option<f64>) -> Option<f64>,
) -> Vec<Option<f64>> {
    let mut placed = Vec::new();
    let mut before = start;
    let mut run = 0usize;
    for entry in entries {
        match entry {
            None => run += 1,
            Some(known) => {
                placed.extend(fill(before, Some(*known), run, false));
                run = 0;
                before = Some(*known);
            }
        }
    }
    placed.extend(fill(before, end_after(before), run, true));
    placed
}

/// Room left for the pages that will follow a page's last run into the
/// same gap: each run takes a small slice, so the gap shrinks slowly
/// instead of halving (floating-point positions would run out of
/// precision after a few dozen halvings).
const TAIL_CAPACITY: f64 = 10_000.0;

/// Distance between appended positions (the store appends with the same).
pub(crate) const SPACING: f64 = 1024.0;

/// Whether `positions` (placed between their neighbours) are still far
/// enough apart to be told apart and to leave room for later pages.
pub(crate) fn is_well_spaced(sorted: &[f64]) -> bool {
    sorted.windows(2).all(|w| w[1] - w[0] > 1e-6)
}

/// `count` positions strictly between `low` and `high`, in order; at the
/// `tail` of a page they are packed at the low end of the gap.
fn fill(low: Option<f64>, high: Option<f64>, count: usize, tail: bool) -> Vec<Option<f64>> {
    let n = count as f64;
    let slots = if tail {
        TAIL_CAPACITY.max(n + 1.0)
    } else {
        n + 1.0
    };
    (0..count)
        .map(|i| {
            let i = i as f64;
            match (low, high) {
                (Some(a), Some(b)) if b > a => Some(a + (b - a) * (i + 1.0) / slots),
                (Some(a), _) => Some(a + (i + 1.0) * SPACING),
                (None, Some(b)) => Some(b - (n - i) * SPACING),
                (None, None) => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_messages_fill_the_gaps_between_known_ones() {
        // known 10, two new, known 20, one new, then the next stored is 30.
        let entries = [Some(10.0), None, None, Some(20.0), None];
        let placed = place(&entries, Some(5.0), |after| {
            assert_eq!(after, Some(20.0));
            Some(30.0)
        });
        assert_eq!(
            placed[..2],
            [Some(10.0 + 10.0 / 3.0), Some(10.0 + 20.0 / 3.0)]
        );
        // The last run is packed low, leaving room for the next page.
        assert_eq!(placed[2], Some(20.0 + 10.0 / TAIL_CAPACITY));
    }

    #[test]
    fn a_page_before_everything_goes_below_the_first_stored_message() {
        let placed = place(&[None, None, None], None, |_| Some(1.0));
        assert_eq!(
            placed,
            vec![
                Some(1.0 - 3.0 * SPACING),
                Some(1.0 - 2.0 * SPACING),
                Some(1.0 - SPACING)
            ]
        );
    }

    #[test]
    fn a_page_after_everything_is_appended_in_order() {
        assert_eq!(
            place(&[None, None], Some(7.0), |_| None),
            vec![Some(7.0 + SPACING), Some(7.0 + 2.0 * SPACING)]
        );
        assert_eq!(place(&[None, None], None, |_| None), vec![None, None]);
    }

    #[test]
    fn many_pages_into_one_gap_keep_strict_order() {
        // 400 pages of 50 continuing one another before the same message.
        let (mut low, high) = (1777.0f64, 1778.0f64);
        for _ in 0..400 {
            let placed = place(&[None; 50], Some(low), |_| Some(high));
            for p in placed {
                let p = p.unwrap();
                assert!(p > low && p < high, "{p} not in ({low}, {high})");
                low = p;
            }
        }
    }
}
