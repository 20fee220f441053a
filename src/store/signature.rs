//! Near-duplicate signatures of pictures (`diversity::signature`), one row per image.

use rusqlite::params;

use super::{Result, Store};
use crate::diversity::Signature;

impl Store {
    /// Stores signatures (replacing older ones), in one transaction; ids no longer in the store
    /// (removed meanwhile) are skipped.
    pub fn write_signatures(&mut self, sigs: &[(i64, Signature)]) -> Result<()> {
        self.write_signatures_where("id", sigs)
    }

    /// [`Store::write_signatures`] by image key (a pull's images, whose signatures came with
    /// the fleet's predictions); keys not in the store are skipped.
    pub fn write_signatures_by_key(&mut self, sigs: &[(String, Signature)]) -> Result<()> {
        self.write_signatures_where("key", sigs)
    }

    /// The image named by `column` (`id` or `key`) gets the signature.
    fn write_signatures_where<K: rusqlite::ToSql>(
        &mut self,
        column: &str,
        sigs: &[(K, Signature)],
    ) -> Result<()> {
        if sigs.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare(&format!(
                "INSERT OR REPLACE INTO image_signature (image_id, sig)
                 SELECT id, ?2 FROM image WHERE {column} = ?1"
            ))?;
            for (k, s) in sigs {
                st.execute(params![k, s.to_bytes()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every stored signature, in image-id order; a row of the wrong size (written by no
    /// termtag) is left out.
    pub fn signatures(&self) -> Result<Vec<(i64, Signature)>> {
        let mut st = self
            .conn
            .prepare("SELECT image_id, sig FROM image_signature ORDER BY image_id")?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let blob = r.get_ref(1)?.as_blob().unwrap_or_default();
            if let Some(s) = Signature::from_bytes(blob) {
                out.push((r.get(0)?, s));
            }
        }
        Ok(out)
    }

    /// Waiting images (new or claimed) without a signature: (id, key), in id order.
    pub fn waiting_without_signature(&self) -> Result<Vec<(i64, String)>> {
        let mut st = self.conn.prepare(
            "SELECT id, key FROM image
             WHERE status IN ('new', 'claimed')
               AND id NOT IN (SELECT image_id FROM image_signature)
             ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Filter, NewImage, Store};
    use crate::diversity::{Groups, planted};

    #[test]
    fn signatures_survive_a_reopen_and_leave_with_their_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.db");
        let sigs = planted(2, 2, 3);
        {
            let mut s = Store::open(&path, "alice").unwrap();
            let images: Vec<NewImage> = (0..4)
                .map(|i| NewImage {
                    key: format!("{i}.png"),
                    width: 64,
                    height: 48,
                    orientation: 1,
                    size: 10,
                    error: None,
                })
                .collect();
            s.add_images(&images).unwrap();
            let ids: Vec<i64> = s
                .image_briefs(&Filter::default())
                .unwrap()
                .iter()
                .map(|b| b.id)
                .collect();
            assert_eq!(ids, [1, 2, 3, 4]);
            // Ids 1..=3 now; 4 later; 99 is no image and is skipped.
            let mut first: Vec<_> = sigs[..3].to_vec();
            first.push((99, sigs[3].1.clone()));
            s.write_signatures(&first).unwrap();
            let missing: Vec<i64> = s
                .waiting_without_signature()
                .unwrap()
                .iter()
                .map(|x| x.0)
                .collect();
            assert_eq!(missing, [4]);
            s.write_signatures(&sigs[3..]).unwrap();
        }
        let mut s = Store::open(&path, "bob").unwrap();
        assert_eq!(s.signatures().unwrap(), sigs);
        assert!(s.waiting_without_signature().unwrap().is_empty());
        let g = Groups::from_store(&s, 0.8).unwrap();
        assert!(g.same_group(1, 2) && g.same_group(3, 4) && !g.same_group(2, 3));
        s.remove_images(&["0.png".to_string()]).unwrap();
        let ids: Vec<i64> = s.signatures().unwrap().iter().map(|x| x.0).collect();
        assert_eq!(ids, [2, 3, 4]);
    }
}
