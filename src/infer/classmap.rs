//! Model classes → project classes: model class ids get names from a labels file, then
//! `[model] class_map` maps (or drops, with `-`) by name or id, names equal to a project class
//! keep it, and `default_class` takes the rest (else they are dropped). The idea of
//! active-learning-detect's `classmap` / `unmapclass` / `default_class`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::InferError;
use super::config::ModelConfig;
use crate::sanitize::{for_terminal, show_path};

/// Names of the model's class ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelLabels {
    pub names: BTreeMap<usize, String>,
}

impl ModelLabels {
    /// Reads a labels file: `.json` holds a list of names (Azure AutoML `labels.json`) or an
    /// object `{"id": "name"}`; a text file holds one name a line (ids from 0) or `id<TAB>name`
    /// lines (COCO's 1..90 with gaps). `#` lines are comments.
    pub fn load(path: &Path) -> Result<ModelLabels, InferError> {
        let shown = show_path(path);
        let text = std::fs::read_to_string(path)
            .map_err(|e| InferError::Model(format!("{shown}: cannot read the labels file: {e}")))?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                InferError::Model(format!(
                    "{shown}: not JSON: {e}; it should be a list of class names"
                ))
            })?;
            let mut names = BTreeMap::new();
            match v {
                serde_json::Value::Array(a) => {
                    for (i, n) in a.iter().enumerate() {
                        let n = n.as_str().ok_or_else(|| {
                            InferError::Model(format!("{shown}: entry {i} is not a string"))
                        })?;
                        names.insert(i, n.to_string());
                    }
                }
                serde_json::Value::Object(o) => {
                    for (k, n) in o {
                        let id = k.trim().parse().map_err(|_| {
                            InferError::Model(format!(
                                "{shown}: key `{}` is not a class id",
                                for_terminal(&k)
                            ))
                        })?;
                        let n = n.as_str().ok_or_else(|| {
                            InferError::Model(format!("{shown}: the name of {id} is not a string"))
                        })?;
                        names.insert(id, n.to_string());
                    }
                }
                _ => {
                    return Err(InferError::Model(format!(
                        "{shown}: expected a list of class names"
                    )));
                }
            }
            return Ok(ModelLabels { names });
        }
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let id_name = |l: &str| -> Option<(usize, String)> {
            let (id, name) = l.split_once(['\t', ' '])?;
            Some((id.parse().ok()?, name.trim().to_string()))
        };
        let names = if !lines.is_empty() && lines.iter().all(|l| id_name(l).is_some()) {
            lines.iter().filter_map(|l| id_name(l)).collect()
        } else {
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i, l.to_string()))
                .collect()
        };
        Ok(ModelLabels { names })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn name(&self, id: usize) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

/// The `--class-map` flag that maps model class `name`, quoted for the shell when it needs to be.
pub fn class_map_flag(name: &str) -> String {
    if name.contains([' ', '\'', '"', '=', '$', '`', '\\']) {
        format!(
            "--class-map '{}=PROJECT_CLASS'",
            name.replace('\'', "'\\''")
        )
    } else {
        format!("--class-map {name}=PROJECT_CLASS")
    }
}

/// Where each model class goes; caches its answers and counts what it dropped.
#[derive(Debug, Clone)]
pub struct ClassResolver {
    labels: ModelLabels,
    map: BTreeMap<String, Option<String>>,
    default_class: Option<String>,
    /// project class name → store id.
    project: HashMap<String, i64>,
    cache: HashMap<usize, Option<i64>>,
    /// Model class name → predictions dropped.
    pub dropped: BTreeMap<String, usize>,
}

impl ClassResolver {
    /// Checks the map against the project: every target must be a project class.
    pub fn new(
        labels: ModelLabels,
        cfg: &ModelConfig,
        project: HashMap<String, i64>,
    ) -> Result<ClassResolver, InferError> {
        let mut map = BTreeMap::new();
        for (from, to) in &cfg.class_map {
            let to = match to.trim() {
                "-" => None,
                t => {
                    if !project.contains_key(t) {
                        return Err(InferError::Model(format!(
                            "the class map (--class-map or [model] class_map) maps `{}` to `{}`, which is not a project class: add it with `termtag classes add {}` or fix the map",
                            for_terminal(from),
                            for_terminal(t),
                            for_terminal(t)
                        )));
                    }
                    Some(t.to_string())
                }
            };
            map.insert(from.clone(), to);
        }
        if let Some(d) = &cfg.default_class
            && !project.contains_key(d)
        {
            return Err(InferError::Model(format!(
                "[model] default_class `{}` is not a project class: add it with `termtag classes add` or change it",
                for_terminal(d)
            )));
        }
        let r = ClassResolver {
            labels,
            map,
            default_class: cfg.default_class.clone(),
            project,
            cache: HashMap::new(),
            dropped: BTreeMap::new(),
        };
        // With named model classes, a map that keeps nothing is a mistake worth stopping for.
        if !r.labels.is_empty() && r.labels.names.keys().all(|id| r.target(*id).is_none()) {
            let some: Vec<String> = r
                .labels
                .names
                .values()
                .take(5)
                .map(|n| for_terminal(n))
                .collect();
            let first = &some[0];
            let example = class_map_flag(first);
            return Err(InferError::Model(format!(
                "none of the model's {} classes ({}, …) is a project class: map them with `{example}` (or [model] class_map = {{ \"{first}\" = \"PROJECT_CLASS\" }} in termtag.toml), add them with `termtag classes add`, or set [model] default_class",
                r.labels.len(),
                some.join(", ")
            )));
        }
        Ok(r)
    }

    fn target(&self, id: usize) -> Option<i64> {
        let name = self.labels.name(id);
        let mapped = self
            .map
            .get(&name)
            .or_else(|| self.map.get(&id.to_string()));
        let project_name = match mapped {
            Some(to) => to.clone(),
            None if self.project.contains_key(&name) => Some(name),
            None => self.default_class.clone(),
        };
        project_name.and_then(|n| self.project.get(&n).copied())
    }

    /// The project class id for model class `id`, or `None` when it is dropped.
    pub fn resolve(&mut self, id: usize) -> Option<i64> {
        if let Some(v) = self.cache.get(&id) {
            if v.is_none() {
                *self.dropped.entry(self.labels.name(id)).or_default() += 1;
            }
            return *v;
        }
        let v = self.target(id);
        self.cache.insert(id, v);
        if v.is_none() {
            *self.dropped.entry(self.labels.name(id)).or_default() += 1;
        }
        v
    }

    pub fn labels(&self) -> &ModelLabels {
        &self.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> HashMap<String, i64> {
        [
            ("mug".to_string(), 1),
            ("person".to_string(), 2),
            ("other".to_string(), 3),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn maps_keeps_drops_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("coco.txt");
        std::fs::write(&p, "# id name\n1\tperson\n47\tcup\n51\tbowl\n62\tchair\n").unwrap();
        let labels = ModelLabels::load(&p).unwrap();
        assert_eq!(labels.name(47), "cup");
        let mut cfg = ModelConfig::default();
        cfg.class_map.insert("cup".into(), "mug".into());
        cfg.class_map.insert("62".into(), "-".into());
        cfg.default_class = Some("other".into());
        let mut r = ClassResolver::new(labels.clone(), &cfg, project()).unwrap();
        assert_eq!(r.resolve(47), Some(1)); // mapped by name
        assert_eq!(r.resolve(1), Some(2)); // same name as a project class
        assert_eq!(r.resolve(62), None); // dropped by id
        assert_eq!(r.resolve(51), Some(3)); // default class
        assert_eq!(r.dropped.get("chair"), Some(&1));

        cfg.default_class = None;
        let mut r = ClassResolver::new(labels.clone(), &cfg, project()).unwrap();
        assert_eq!(r.resolve(51), None);

        cfg.class_map.insert("bowl".into(), "plate".into());
        let e = ClassResolver::new(labels, &cfg, project())
            .unwrap_err()
            .to_string();
        assert!(e.contains("plate") && e.contains("classes add"), "{e}");
    }

    #[test]
    fn json_and_plain_labels() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("labels.json");
        std::fs::write(&j, r#"["can", "carton"]"#).unwrap();
        assert_eq!(ModelLabels::load(&j).unwrap().name(1), "carton");
        let t = dir.path().join("l.txt");
        std::fs::write(&t, "cat\ndog\n").unwrap();
        assert_eq!(ModelLabels::load(&t).unwrap().name(1), "dog");
    }

    #[test]
    fn nothing_maps_is_an_error() {
        let labels = ModelLabels {
            names: [(0, "car".to_string())].into_iter().collect(),
        };
        let e = ClassResolver::new(labels, &ModelConfig::default(), project())
            .unwrap_err()
            .to_string();
        assert!(e.contains("class_map"), "{e}");
    }
}
