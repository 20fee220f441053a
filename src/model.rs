//! Domain types shared by the store, the formats and (later) the TUI and inference.
//!
//! Boxes are normalised to [0, 1] in the *displayed* orientation of the image, i.e. after the EXIF
//! orientation has been applied; widths and heights are displayed sizes too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A task, status or label name that the domain does not accept (shown sanitised).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("unknown task `{0}`: use detect, classify or multilabel")]
    UnknownTask(String),
    #[error("unknown status `{0}`: use new, claimed, reviewed, skipped or broken")]
    UnknownStatus(String),
    #[error(
        "invalid label name `{0}`: a label name is 1 to 32 letters (any script), digits, `-` or `_`"
    )]
    LabelName(String),
}

/// What a project labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Object detection: boxes with a class each.
    Detect,
    /// Multi-class classification: exactly one class per image.
    Classify,
    /// Multi-label classification: any number of classes per image.
    Multilabel,
}

impl Task {
    pub fn is_detect(self) -> bool {
        self == Task::Detect
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Detect => "detect",
            Task::Classify => "classify",
            Task::Multilabel => "multilabel",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Task {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "detect" => Ok(Task::Detect),
            "classify" => Ok(Task::Classify),
            "multilabel" => Ok(Task::Multilabel),
            other => Err(ModelError::UnknownTask(crate::sanitize::for_terminal(
                other,
            ))),
        }
    }
}

/// A box normalised to [0, 1], `x0 < x1`, `y0 < y1`, in displayed orientation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

/// What happened when a box was made from untrusted coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum BoxIssue {
    /// Coordinates were NaN or infinite.
    NotFinite,
    /// After clipping to the image, the box has no area.
    ZeroArea,
}

impl fmt::Display for BoxIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoxIssue::NotFinite => f.write_str("box coordinates are not finite numbers"),
            BoxIssue::ZeroArea => f.write_str("box has zero area (inside the image)"),
        }
    }
}

impl BBox {
    /// The whole image.
    pub const FULL: BBox = BBox {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    };

    /// Builds a box from normalised corners in any order, clipping to the unit square.
    /// Returns the box and whether it had to be clipped.
    pub fn clipped(x0: f64, y0: f64, x1: f64, y1: f64) -> Result<(BBox, bool), BoxIssue> {
        if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
            return Err(BoxIssue::NotFinite);
        }
        let (x0, x1) = (x0.min(x1), x0.max(x1));
        let (y0, y1) = (y0.min(y1), y0.max(y1));
        let c = |v: f64| v.clamp(0.0, 1.0);
        let b = BBox {
            x0: c(x0),
            y0: c(y0),
            x1: c(x1),
            y1: c(y1),
        };
        // A tolerance of 1e-9 absorbs float noise from pixel → normalised conversions.
        let clipped = (b.x0 - x0).abs() > 1e-9
            || (b.y0 - y0).abs() > 1e-9
            || (b.x1 - x1).abs() > 1e-9
            || (b.y1 - y1).abs() > 1e-9;
        if b.x1 - b.x0 <= 0.0 || b.y1 - b.y0 <= 0.0 {
            return Err(BoxIssue::ZeroArea);
        }
        Ok((b, clipped))
    }

    /// From pixel corners of an image of `w`×`h` pixels.
    pub fn from_pixels(
        x0: f64,
        y0: f64,
        x1: f64,
        y1: f64,
        w: u32,
        h: u32,
    ) -> Result<(BBox, bool), BoxIssue> {
        let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
        BBox::clipped(x0 / w, y0 / h, x1 / w, y1 / h)
    }

    /// Pixel corners `(x0, y0, x1, y1)` for an image of `w`×`h` pixels.
    pub fn to_pixels(&self, w: u32, h: u32) -> (f64, f64, f64, f64) {
        let (w, h) = (f64::from(w), f64::from(h));
        (self.x0 * w, self.y0 * h, self.x1 * w, self.y1 * h)
    }

    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }
    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    /// Intersection over union.
    pub fn iou(&self, o: &BBox) -> f64 {
        let iw = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let ih = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Maps a box given in the stored (raw, un-rotated) pixel layout of an image to its displayed
    /// layout, for an EXIF orientation value 1–8.
    pub fn raw_to_displayed(&self, orientation: u8) -> BBox {
        let (x0, y0, x1, y1) = (self.x0, self.y0, self.x1, self.y1);
        // Each case maps the raw unit square onto the displayed one; corners are re-sorted below.
        let (a, b, c, d) = match orientation {
            2 => (1.0 - x1, y0, 1.0 - x0, y1),             // mirror horizontal
            3 => (1.0 - x1, 1.0 - y1, 1.0 - x0, 1.0 - y0), // rotate 180
            4 => (x0, 1.0 - y1, x1, 1.0 - y0),             // mirror vertical
            5 => (y0, x0, y1, x1),                         // transpose
            6 => (1.0 - y1, x0, 1.0 - y0, x1),             // rotate 90 clockwise
            7 => (1.0 - y1, 1.0 - x1, 1.0 - y0, 1.0 - x0), // transverse
            8 => (y0, 1.0 - x1, y1, 1.0 - x0),             // rotate 270 clockwise
            _ => (x0, y0, x1, y1),
        };
        BBox {
            x0: a.min(c),
            y0: b.min(d),
            x1: a.max(c),
            y1: b.max(d),
        }
    }
}

/// Does an EXIF orientation swap width and height?
pub fn orientation_swaps_axes(orientation: u8) -> bool {
    matches!(orientation, 5..=8)
}

/// One label or prediction on an image: a class and, for detection, a box.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub class: String,
    pub bbox: Option<BBox>,
    /// Model confidence, for predictions (and labels that came from accepted predictions).
    pub score: Option<f64>,
}

/// The labels of one image as a format carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLabels {
    /// Project key: path relative to the image source, `/`-separated.
    pub key: String,
    /// Displayed width and height in pixels; 0 where the format does not carry them.
    pub width: u32,
    pub height: u32,
    /// No labels here and present in the set means the image was verified to hold no object.
    pub labels: Vec<Label>,
}

/// A set of labelled images: what an importer produces and an exporter consumes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// Class names in project order (this order gives YOLO indices and COCO category ids).
    pub classes: Vec<String>,
    /// Images, sorted by key on export.
    pub images: Vec<ImageLabels>,
}

/// Where `class` stands in a project's class list: its number in the formats that number
/// classes, and its colour on screen.
pub fn class_index(classes: &[String], class: &str) -> Option<usize> {
    classes.iter().position(|c| c == class)
}

/// Status of an image in the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    New,
    Claimed,
    Reviewed,
    Skipped,
    Broken,
}

impl ImageStatus {
    pub const ALL: [ImageStatus; 5] = [
        ImageStatus::New,
        ImageStatus::Claimed,
        ImageStatus::Reviewed,
        ImageStatus::Skipped,
        ImageStatus::Broken,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::New => "new",
            ImageStatus::Claimed => "claimed",
            ImageStatus::Reviewed => "reviewed",
            ImageStatus::Skipped => "skipped",
            ImageStatus::Broken => "broken",
        }
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageStatus {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ModelError::UnknownStatus(crate::sanitize::for_terminal(s)))
    }
}

/// Where an annotation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Human,
    AcceptedPrediction,
    Imported,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Human => "human",
            Origin::AcceptedPrediction => "accepted_prediction",
            Origin::Imported => "imported",
        }
    }
    pub fn parse(s: &str) -> Option<Origin> {
        match s {
            "human" => Some(Origin::Human),
            "accepted_prediction" => Some(Origin::AcceptedPrediction),
            "imported" => Some(Origin::Imported),
            _ => None,
        }
    }
}

/// The label-name rule (ModelArts): 1 to 32 characters, letters of any script, digits, `-`, `_`.
pub fn validate_label_name(name: &str) -> Result<(), ModelError> {
    let n = name.chars().count();
    let ok_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if (1..=32).contains(&n) && ok_chars {
        Ok(())
    } else {
        Err(ModelError::LabelName(crate::sanitize::for_terminal(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        for ok in [
            "knot",
            "knot_round",
            "a-b",
            "猫",
            "Ölfleck",
            "x1",
            &"a".repeat(32),
        ] {
            assert!(validate_label_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a.b",
            "a\u{1b}[31m",
            &"a".repeat(33),
            "NULL!",
        ] {
            assert!(validate_label_name(bad).is_err(), "{bad:?}");
        }
        let e = validate_label_name("a b").unwrap_err().to_string();
        assert!(e.contains("1 to 32"), "{e}");
    }

    #[test]
    fn clip_and_zero_area() {
        let (b, clipped) = BBox::clipped(-0.1, 0.2, 0.5, 1.2).unwrap();
        assert!(clipped);
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (0.0, 0.2, 0.5, 1.0));
        let (_, clipped) = BBox::clipped(0.1, 0.1, 0.2, 0.2).unwrap();
        assert!(!clipped);
        assert_eq!(BBox::clipped(0.3, 0.1, 0.3, 0.5), Err(BoxIssue::ZeroArea));
        assert_eq!(BBox::clipped(1.2, 0.1, 1.5, 0.5), Err(BoxIssue::ZeroArea));
        assert_eq!(
            BBox::clipped(f64::NAN, 0.1, 0.2, 0.5),
            Err(BoxIssue::NotFinite)
        );
    }

    #[test]
    fn orientation_maps_corners() {
        // Raw 40×20 image, box on the left half; EXIF 6 shows it rotated 90° clockwise (20×40),
        // where the raw left edge becomes the top.
        let raw = BBox {
            x0: 0.0,
            y0: 0.0,
            x1: 0.5,
            y1: 1.0,
        };
        let d = raw.raw_to_displayed(6);
        assert_eq!((d.x0, d.y0, d.x1, d.y1), (0.0, 0.0, 1.0, 0.5));
        let d = raw.raw_to_displayed(8);
        assert_eq!((d.x0, d.y0, d.x1, d.y1), (0.0, 0.5, 1.0, 1.0));
        let d = raw.raw_to_displayed(3);
        assert_eq!((d.x0, d.y0, d.x1, d.y1), (0.5, 0.0, 1.0, 1.0));
        assert_eq!(raw.raw_to_displayed(1), raw);
    }

    #[test]
    fn iou() {
        let a = BBox {
            x0: 0.0,
            y0: 0.0,
            x1: 0.5,
            y1: 0.5,
        };
        let b = BBox {
            x0: 0.25,
            y0: 0.0,
            x1: 0.75,
            y1: 0.5,
        };
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-12);
    }
}
