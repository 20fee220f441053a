//! What the remote (pull/push) needs from the store: the claims this machine holds, images
//! added as claimed, and claims released after a push.

use std::collections::HashMap;

use rusqlite::params;

use super::{Result, Store, insert_images, journal};
use crate::model::ImageStatus;
use crate::store::NewImage;

/// A claim this machine holds on a remote image.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldClaim {
    pub key: String,
    pub remote: String,
    pub batch_id: String,
    pub etag: Option<String>,
    pub claimed_at: i64,
    pub expires_at: i64,
    /// The image's status (`claimed` until reviewed).
    pub status: ImageStatus,
}

/// A claim won on the remote, to record with its image.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClaim {
    pub key: String,
    pub remote: String,
    pub batch_id: String,
    pub etag: String,
    pub claimed_at: i64,
    pub expires_at: i64,
}

impl Store {
    pub fn held_claims(&self) -> Result<Vec<HeldClaim>> {
        let mut st = self.conn.prepare(
            "SELECT i.key, c.remote, c.batch_id, c.etag, c.claimed_at, c.expires_at, i.status
             FROM claim c JOIN image i ON i.id = c.image_id ORDER BY i.key",
        )?;
        let rows = st.query_map([], |r| {
            Ok(HeldClaim {
                key: r.get(0)?,
                remote: r.get(1)?,
                batch_id: r.get(2)?,
                etag: r.get(3)?,
                claimed_at: r.get(4)?,
                expires_at: r.get(5)?,
                status: r
                    .get::<_, String>(6)?
                    .parse()
                    .unwrap_or(ImageStatus::Claimed),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Status of every image, by key.
    pub fn image_statuses(&self) -> Result<HashMap<String, ImageStatus>> {
        let mut st = self.conn.prepare("SELECT key, status FROM image")?;
        let rows = st.query_map([], |r| {
            let status: String = r.get(1)?;
            Ok((r.get(0)?, status.parse().unwrap_or(ImageStatus::New)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds pulled images (or marks known `new` ones) as claimed and records their claims, in
    /// one transaction. Returns how many images were new to the store.
    pub fn add_claimed_images(
        &mut self,
        images: &[NewImage],
        claims: &[NewClaim],
    ) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let added = insert_images(&tx, images, ImageStatus::Claimed)?;
        {
            let mut mark = tx
                .prepare("UPDATE image SET status = 'claimed' WHERE key = ?1 AND status = 'new'")?;
            let mut claim = tx.prepare(
                "INSERT OR REPLACE INTO claim (image_id, remote, batch_id, etag, claimed_at, expires_at)
                 SELECT id, ?2, ?3, ?4, ?5, ?6 FROM image WHERE key = ?1",
            )?;
            for c in claims {
                mark.execute(params![c.key])?;
                claim.execute(params![
                    c.key,
                    c.remote,
                    c.batch_id,
                    c.etag,
                    c.claimed_at,
                    c.expires_at
                ])?;
            }
        }
        journal(
            &tx,
            &self.author,
            "remote.pull",
            None,
            &format!("{} claims, {added} new images", claims.len()),
        )?;
        tx.commit()?;
        Ok(added)
    }

    /// Forgets the claims on `keys` (after a push released them remotely).
    pub fn release_claims(&mut self, keys: &[String]) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut st = tx.prepare(
                "DELETE FROM claim WHERE image_id = (SELECT id FROM image WHERE key = ?1)",
            )?;
            for k in keys {
                n += st.execute(params![k])?;
            }
        }
        journal(
            &tx,
            &self.author,
            "remote.push",
            None,
            &format!("{n} claims released"),
        )?;
        tx.commit()?;
        Ok(n)
    }
}
