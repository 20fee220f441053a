//! Review speed: the active time each annotator spent on each image (recorded by the review
//! screen, idle gaps already cut), and what they made of the model's proposals.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Result, Store, n, now_ms};

/// How fast one annotator reviews, and what they made of the model's proposals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Speed {
    pub author: String,
    /// Images they reviewed (and that are still reviewed).
    pub reviewed: usize,
    /// Active time on every image they had on screen, reviewed or not.
    pub active_ms: i64,
    /// Proposals they accepted exactly as the model drew them.
    pub accepted_unchanged: usize,
    /// Proposals they accepted after moving, resizing or re-classing them.
    pub edited: usize,
    pub dismissed: usize,
    /// Labels of their own: boxes drawn new, classes set by hand.
    pub drawn: usize,
}

impl Speed {
    /// Column heads of [`Speed::row`].
    pub const HEADER: &'static str = "images  s/image  img/hour  unchanged edited dismissed  drawn";

    /// One table row, for `termtag stats` and the dashboard: `-` where nothing was timed.
    pub fn row(&self) -> String {
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
        };
        let pct = |i: usize| {
            self.shares()
                .map_or_else(|| "-".to_string(), |s| format!("{:.0}%", 100.0 * s[i]))
        };
        format!(
            "{:>6}{:>9}{:>10}{:>11}{:>7}{:>10}{:>7}",
            self.reviewed,
            opt(self.seconds_per_image(), 1),
            opt(self.images_per_hour(), 0),
            pct(0),
            pct(1),
            pct(2),
            self.drawn
        )
    }

    /// Active seconds per reviewed image; `None` before any timed review.
    pub fn seconds_per_image(&self) -> Option<f64> {
        (self.reviewed > 0 && self.active_ms > 0)
            .then(|| self.active_ms as f64 / 1000.0 / self.reviewed as f64)
    }

    pub fn images_per_hour(&self) -> Option<f64> {
        self.seconds_per_image().map(|s| 3600.0 / s)
    }

    /// Shares (0–1) of decided proposals accepted unchanged, edited and dismissed.
    pub fn shares(&self) -> Option<[f64; 3]> {
        let decided = self.accepted_unchanged + self.edited + self.dismissed;
        (decided > 0).then(|| {
            [self.accepted_unchanged, self.edited, self.dismissed]
                .map(|k| k as f64 / decided as f64)
        })
    }

    /// Everyone together, as `author`.
    pub fn total(all: &[Speed], author: &str) -> Speed {
        all.iter().fold(
            Speed {
                author: author.to_string(),
                ..Speed::default()
            },
            |t, s| Speed {
                author: t.author,
                reviewed: t.reviewed + s.reviewed,
                active_ms: t.active_ms + s.active_ms,
                accepted_unchanged: t.accepted_unchanged + s.accepted_unchanged,
                edited: t.edited + s.edited,
                dismissed: t.dismissed + s.dismissed,
                drawn: t.drawn + s.drawn,
            },
        )
    }
}

impl Store {
    /// Adds active time this annotator spent on an image.
    pub fn add_active_time(&mut self, image_id: i64, ms: i64) -> Result<()> {
        if ms <= 0 {
            return Ok(());
        }
        self.conn.execute(
            "INSERT INTO review_time (image_id, author, active_ms, updated_at)
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM image WHERE id = ?1)
             ON CONFLICT (image_id, author)
             DO UPDATE SET active_ms = active_ms + excluded.active_ms, updated_at = excluded.updated_at",
            params![image_id, self.author, ms, now_ms()],
        )?;
        Ok(())
    }

    /// Review speed per annotator, by name.
    pub fn review_speed(&self) -> Result<Vec<Speed>> {
        let c = &self.conn;
        let mut by: BTreeMap<String, Speed> = BTreeMap::new();
        fn entry(by: &mut BTreeMap<String, Speed>, who: String) -> &mut Speed {
            by.entry(who.clone()).or_insert_with(|| Speed {
                author: who,
                ..Speed::default()
            })
        }
        let mut st = c.prepare(
            "SELECT reviewed_by, count(*) FROM image
             WHERE status = 'reviewed' AND reviewed_by IS NOT NULL GROUP BY reviewed_by",
        )?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, n(r, 1)?)))? {
            let (who, k) = row?;
            entry(&mut by, who).reviewed = k;
        }
        let mut st = c.prepare("SELECT author, sum(active_ms) FROM review_time GROUP BY author")?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (who, ms) = row?;
            entry(&mut by, who).active_ms = ms;
        }
        // A decision copied onto the same box of a newer run (the same predictions imported
        // again) is one decision: rows are told apart by box and time, not by id.
        let mut st = c.prepare(
            "SELECT decided_by, decision, unchanged, count(*) FROM (
                SELECT DISTINCT p.decided_by, p.decision, p.image_id, p.class_id,
                       p.x0, p.y0, p.x1, p.y1, p.decided_at,
                       EXISTS (SELECT 1 FROM annotation a
                               WHERE a.image_id = p.image_id AND a.class_id = p.class_id
                                 AND a.origin = 'accepted_prediction'
                                 AND a.x0 IS p.x0 AND a.y0 IS p.y0
                                 AND a.x1 IS p.x1 AND a.y1 IS p.y1) AS unchanged
                FROM prediction p WHERE p.decision IS NOT NULL AND p.decided_by IS NOT NULL)
             GROUP BY decided_by, decision, unchanged",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                n(r, 3)?,
            ))
        })?;
        for row in rows {
            let (who, decision, unchanged, k) = row?;
            let s = entry(&mut by, who);
            match (decision.as_str(), unchanged) {
                ("dismissed", _) => s.dismissed += k,
                (_, true) => s.accepted_unchanged += k,
                (_, false) => s.edited += k,
            }
        }
        let mut st = c.prepare(
            "SELECT author, count(*) FROM annotation WHERE origin = 'human' GROUP BY author",
        )?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, n(r, 1)?)))? {
            let (who, k) = row?;
            entry(&mut by, who).drawn = k;
        }
        Ok(by.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_shares() {
        let s = Speed {
            author: "a".into(),
            reviewed: 4,
            active_ms: 60_000,
            accepted_unchanged: 6,
            edited: 2,
            dismissed: 2,
            drawn: 1,
        };
        assert_eq!(s.seconds_per_image(), Some(15.0));
        assert_eq!(s.images_per_hour(), Some(240.0));
        assert_eq!(s.shares(), Some([0.6, 0.2, 0.2]));
        let none = Speed::default();
        assert_eq!(none.seconds_per_image(), None);
        assert_eq!(none.shares(), None);
        let t = Speed::total(&[s.clone(), s], "all");
        assert_eq!((t.reviewed, t.active_ms, t.drawn), (8, 120_000, 2));
        assert_eq!(t.seconds_per_image(), Some(15.0));
    }
}
