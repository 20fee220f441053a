//! The command line (clap). Each command is a thin layer over `project` and `store`.

use std::io::IsTerminal;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::formats::FormatKind;
use crate::model::Task;
use crate::project::{ClassMap, Project, RefreshReport};
use crate::sanitize::{for_terminal, safe_join, show_path};
use crate::store::{Filter, Store};
use crate::tui::graphics::GraphicsChoice;

#[derive(Debug, Parser)]
#[command(
    name = "termtag",
    version,
    about = "Label images for detection and classification in the terminal"
)]
pub struct Cli {
    /// Project folder (default: the nearest folder with a termtag.toml, from the current one up).
    #[arg(short = 'C', long, global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Without a command: open the review screen (`termtag label`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Does this run take over the terminal (so logs must go to a file)?
    pub fn is_tui(&self) -> bool {
        matches!(
            self.command,
            None | Some(Command::Label { .. }) | Some(Command::Demo { .. })
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the review screen (the default when no command is given).
    Label {
        /// Terminal graphics: auto asks the terminal; halfblocks works everywhere.
        #[arg(long, value_enum, default_value_t)]
        graphics: GraphicsChoice,
    },
    /// Create a project (or add classes and new images to an existing one).
    Init {
        /// Project folder (created if missing).
        dir: PathBuf,
        #[arg(long)]
        task: Task,
        /// Class names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        classes: Vec<String>,
        /// Image folder or blob container URL (default: the project folder).
        #[arg(long)]
        source: Option<String>,
    },
    /// Build the wood-board demo (a trained model pre-labels it live) and open the review queue.
    Demo {
        /// Where to put it.
        #[arg(default_value = "termtag-demo")]
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        graphics: GraphicsChoice,
        /// Delete the demo in DIR and build it again.
        #[arg(long)]
        reset: bool,
        /// Install nothing: without ONNX Runtime, import the predictions recorded with the model.
        #[arg(long)]
        offline: bool,
        /// Only write N generated boards and their ground truth into DIR (the trainer's data).
        #[arg(long, value_name = "N", hide = true)]
        boards: Option<u32>,
        /// The generator's seed for --boards.
        #[arg(long, hide = true, default_value_t = crate::demo::SEED)]
        seed: u64,
    },
    /// Add images that appeared in the source folder since the last scan.
    Refresh,
    /// Read labels or predictions from a file or folder.
    Import(ImportArgs),
    /// Write the reviewed labels (or the latest predictions).
    Export {
        #[arg(long)]
        format: FormatKind,
        /// Output file (coco, ald-csv, azureml-jsonl) or folder (voc, yolo, modelarts-txt).
        out: PathBuf,
        /// Export the latest model predictions, with scores, instead of reviewed labels.
        #[arg(long)]
        predictions: bool,
    },
    /// Counts per status, class and annotator.
    Stats,
    /// List or remove images.
    #[command(subcommand)]
    Images(ImagesCmd),
    /// Add, rename, merge or delete classes.
    #[command(subcommand)]
    Classes(ClassesCmd),
    /// Pre-label with an ONNX model: every image this model has not seen yet (resumable).
    Predict {
        /// ONNX model file (default: [model] path in termtag.toml).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model class names: a .txt (one a line, or `id<TAB>name`) or .json (default: [model]
        /// labels, the model's metadata `names`, a labels/classes file beside the model).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Map a model class (name or id) to a project class, `-` drops it; repeatable, over
        /// [model] class_map.
        #[arg(long = "class-map", value_name = "FROM=TO", value_parser = parse_class_map)]
        class_map: Vec<(String, String)>,
        /// Start a new model run even when this model with these settings ran before.
        #[arg(long)]
        rerun: bool,
        /// Only this machine's share of the images, K/N (e.g. 3/8).
        #[arg(long, value_parser = clap::value_parser!(crate::infer::Shard))]
        shard: Option<crate::infer::Shard>,
        /// Decode threads (default: all cores).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Print the review queue, most uncertain first.
    Queue {
        /// Uncertainty metric (default: [queue] metric, else least_confidence).
        #[arg(long)]
        metric: Option<crate::queue::Metric>,
        /// Images to show; 0 shows all.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// uncertain (default), audit (most confident first) or random (seeded baseline).
        #[arg(long)]
        order: Option<crate::queue::Order>,
        /// Where images with no detection go (default: [queue] empty, else last).
        #[arg(long)]
        empty: Option<crate::queue::EmptyPolicy>,
        /// Seed of the random order.
        #[arg(long)]
        seed: Option<u64>,
        /// Only images matching this filter, e.g. 'score=0.3..0.6' or 'boxes=5..' (the terms
        /// of `images list --filter`).
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// A model run against the reviewed labels (AP for boxes; accuracy, precision/recall/F1 and
    /// the confusion matrix for classes); writes performance.csv.
    Eval {
        /// Model run (default: the newest that predicted reviewed images).
        #[arg(long)]
        run: Option<i64>,
        /// Performance CSV (default: performance.csv in the project folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
        /// Multi-label: the score at which a class counts as predicted, for precision, recall
        /// and F1 (default: min_confidence).
        #[arg(long)]
        threshold: Option<f64>,
    },
    /// Replay review with the truth as the annotator: how soon each queue order finds the
    /// model's mistakes, against random order; --rounds also retrains between batches.
    Simulate(crate::simulate::SimulateArgs),
    /// Export the labels, run the [train] command, register the model it writes.
    Train {
        /// Only when [train] every images were reviewed since the last training.
        #[arg(long)]
        if_due: bool,
    },
    /// Say what works here: ONNX Runtime, its version and execution providers.
    Doctor,
    /// Claim the most uncertain unclaimed images of the remote and download them.
    Pull {
        /// How many images to claim.
        #[arg(long, default_value_t = crate::commands::pull::DEFAULT_COUNT)]
        count: usize,
    },
    /// Upload the reviewed labels of claimed images and release their claims.
    Push,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// File or folder to read.
    pub path: PathBuf,
    #[arg(long)]
    pub format: FormatKind,
    /// Read the file as reviewed labels or as model predictions (with scores).
    #[arg(long = "as", value_enum, default_value = "labels")]
    pub kind: ImportKind,
    /// Map class names: `FROM=TO,...`; TO `-` drops the class.
    #[arg(long, value_name = "MAP")]
    pub class_map: Option<String>,
    /// Add classes the project does not have yet instead of refusing them.
    #[arg(long)]
    pub add_classes: bool,
    /// Import the rest when some rows name images the project does not have (they are counted
    /// and reported); without it such a file is refused and nothing is imported.
    #[arg(long)]
    pub skip_missing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportKind {
    Labels,
    Predictions,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
    /// List images, optionally filtered.
    List {
        /// e.g. 'class=knot status=reviewed name=st1* by=alice date=2026-01-01..2026-01-31
        /// score=0.3..0.6 boxes=5..'
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// Remove images (and their labels) from the project.
    Rm {
        #[arg(required = true)]
        keys: Vec<String>,
        /// Also delete the image files from the source folder.
        #[arg(long)]
        delete_source: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClassesCmd {
    /// Add classes at the end of the list.
    Add {
        #[arg(value_delimiter = ',', required = true)]
        names: Vec<String>,
    },
    /// Rename a class; its labels follow.
    Rename { old: String, new: String },
    /// Move every label of FROM to INTO and remove FROM.
    Merge { from: String, into: String },
    /// Delete a class and its labels.
    Delete {
        name: String,
        /// Also remove the images that carry the class from the project.
        #[arg(long)]
        with_images: bool,
        /// With --with-images: also delete those image files from the source folder.
        #[arg(long, requires = "with_images")]
        delete_source: bool,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    let command = cli.command.unwrap_or(Command::Label {
        graphics: GraphicsChoice::Auto,
    });
    if let Command::Init {
        dir,
        task,
        classes,
        source,
    } = &command
    {
        let project = Project::init(dir, *task, classes, source.as_deref())?;
        let mut store = project.store()?;
        let report = refresh(&project, &mut store)?;
        outln!(
            "project {} ({}) in {}",
            for_terminal(&project.config.name),
            project.config.task,
            show_path(&project.root)
        )?;
        print_refresh(&report)?;
        return Ok(());
    }
    if let Command::Demo {
        dir,
        graphics,
        reset,
        offline,
        boards,
        seed,
    } = &command
    {
        if let Some(n) = boards {
            let labels = crate::demo::write_boards(dir, *n, *seed)?;
            outln!("wrote {n} boards (seed {seed}) and {}", show_path(&labels))?;
            return Ok(());
        }
        let opts = crate::demo::DemoOptions {
            reset: *reset,
            offline: *offline,
        };
        let project = crate::demo::build(dir, &opts, &|line| {
            let _ = outln!("{line}");
        })?;
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            log_to_file(&project);
            return crate::tui::app::run(&project, *graphics);
        }
        outln!("demo project in {}", show_path(&project.root))?;
        print_stats(&project, &project.store()?)?;
        outln!(
            "open it in a terminal: termtag -C {}",
            show_path(&project.root)
        )?;
        return Ok(());
    }
    let start = cli.project.clone().unwrap_or_else(|| PathBuf::from("."));
    if let Command::Doctor = &command {
        // Works outside a project too: it reports on this machine.
        let project = Project::discover(&start).ok();
        crate::infer::cmd::cmd_doctor(project.as_ref())?;
        outln!("graphics: {}", doctor_graphics())?;
        if let Some(p) = &project {
            outln!("blob storage: {}", doctor_remote(p))?;
        }
        return Ok(());
    }
    let project = Project::discover(&start)?;
    let mut store = project.store()?;
    match command {
        Command::Init { .. } | Command::Demo { .. } => unreachable!("handled above"),
        Command::Label { graphics } => {
            log_to_file(&project);
            crate::tui::app::run(&project, graphics)?;
        }
        Command::Refresh => {
            let report = refresh(&project, &mut store)?;
            print_refresh(&report)?;
        }
        Command::Import(args) => import(&project, &mut store, &args)?,
        Command::Export {
            format,
            out,
            predictions,
        } => {
            let (ds, files) = project.export(&store, format, &out, predictions)?;
            let labels: usize = ds.images.iter().map(|i| i.labels.len()).sum();
            outln!(
                "exported {} images, {labels} {} as {} to {} ({} files)",
                ds.images.len(),
                if predictions { "predictions" } else { "labels" },
                format.name(),
                show_path(&out),
                files.len()
            )?;
        }
        Command::Stats => print_stats(&project, &store)?,
        Command::Images(ImagesCmd::List { filter }) => {
            let filter = project_filter(&project, &filter)?;
            for im in store.images(&filter)? {
                let when = im.reviewed_at.map(format_day).unwrap_or_default();
                let mut classes = im.classes.clone();
                classes.dedup();
                outln!(
                    "{}\t{}\t{}x{}\t{}\t{}\t{}{}",
                    for_terminal(&im.key),
                    im.status,
                    im.width,
                    im.height,
                    for_terminal(&classes.join(",")),
                    for_terminal(im.reviewed_by.as_deref().unwrap_or("")),
                    when,
                    im.error
                        .map(|e| format!("\t{}", for_terminal(&e)))
                        .unwrap_or_default()
                )?;
            }
        }
        Command::Images(ImagesCmd::Rm {
            keys,
            delete_source,
        }) => {
            let removed = store.remove_images(&keys)?;
            let deleted = if delete_source {
                delete_sources(&project, &removed)?
            } else {
                0
            };
            outln!(
                "removed {} images from the project{}",
                removed.len(),
                if delete_source {
                    format!(", deleted {deleted} files")
                } else {
                    String::new()
                }
            )?;
        }
        Command::Classes(cmd) => classes(&project, &mut store, cmd)?,
        Command::Predict {
            model,
            labels,
            class_map,
            rerun,
            shard,
            workers,
        } => crate::infer::cmd::cmd_predict(
            &project,
            &mut store,
            crate::infer::PredictOptions {
                model,
                labels,
                class_map,
                rerun,
                shard,
                workers,
            },
        )?,
        Command::Queue {
            metric,
            limit,
            order,
            empty,
            seed,
            filter,
        } => {
            let filter = project_filter(&project, &filter)?;
            crate::infer::cmd::cmd_queue(
                &project, &store, &filter, metric, limit, order, empty, seed,
            )?
        }
        Command::Eval {
            run,
            out,
            json,
            threshold,
        } => crate::infer::cmd::cmd_eval(&project, &store, run, out, json, threshold)?,
        Command::Simulate(args) => crate::simulate::cmd_simulate(&project, &store, &args)?,
        Command::Train { if_due } => crate::infer::cmd::cmd_train(&project, &mut store, if_due)?,
        Command::Doctor => unreachable!("handled above"),
        Command::Pull { count } => crate::commands::pull::cmd_pull(&project, &mut store, count)?,
        Command::Push => crate::commands::push::cmd_push(&project, &mut store)?,
    }
    Ok(())
}

fn classes(project: &Project, store: &mut Store, cmd: ClassesCmd) -> Result<()> {
    match cmd {
        ClassesCmd::Add { names } => {
            let n = store.add_classes(&names)?;
            outln!("added {n} classes")?;
        }
        ClassesCmd::Rename { old, new } => {
            store.rename_class(&old, &new)?;
            outln!("renamed {} to {}", for_terminal(&old), for_terminal(&new))?;
        }
        ClassesCmd::Merge { from, into } => {
            let n = store.merge_class(&from, &into)?;
            outln!(
                "merged {} into {}: {n} labels moved",
                for_terminal(&from),
                for_terminal(&into)
            )?;
        }
        ClassesCmd::Delete {
            name,
            with_images,
            delete_source,
        } => {
            let (labels, removed) = store.delete_class(&name, with_images)?;
            let deleted = if delete_source {
                delete_sources(project, &removed)?
            } else {
                0
            };
            outln!(
                "deleted class {}: {labels} labels, {} images removed{}",
                for_terminal(&name),
                removed.len(),
                if delete_source {
                    format!(", {deleted} files deleted")
                } else {
                    String::new()
                }
            )?;
        }
    }
    Ok(())
}

fn import(project: &Project, store: &mut Store, args: &ImportArgs) -> Result<()> {
    let map = match &args.class_map {
        Some(s) => ClassMap::parse(s)?,
        None => ClassMap::default(),
    };
    let predictions = args.kind == ImportKind::Predictions;
    let report = project.import(
        store,
        &args.path,
        args.format,
        predictions,
        &map,
        args.add_classes,
        args.skip_missing,
    )?;
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    if !report.classes_added.is_empty() {
        outln!(
            "added classes: {}",
            for_terminal(&report.classes_added.join(", "))
        )?;
    }
    let c = &report.counts;
    outln!(
        "imported {} {} on {} images ({} with none){}; skipped {} rows (images not in the project)",
        c.labels,
        if predictions { "predictions" } else { "labels" },
        c.images,
        c.empty,
        report
            .run_id
            .map(|r| format!(" as model run {r}"))
            .unwrap_or_default(),
        report.skipped_rows
    )?;
    Ok(())
}

/// Deletes the source files of removed images; keys are checked so nothing outside the source
/// folder can be touched.
fn delete_sources(project: &Project, keys: &[String]) -> Result<usize> {
    let Some(dir) = project.source_dir() else {
        bail!("the source is a blob container; deleting blobs is not supported from here");
    };
    let mut deleted = 0;
    for key in keys {
        let path = safe_join(&dir, key).map_err(anyhow::Error::msg)?;
        match std::fs::remove_file(&path) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("{}: cannot delete", show_path(&path)));
            }
        }
    }
    Ok(deleted)
}

fn refresh(project: &Project, store: &mut Store) -> Result<RefreshReport> {
    let bar = crate::commands::progress::bar(
        "indexing {bar:30} {pos}/{len} images ({per_sec}, {eta} left)",
    );
    let report = project.refresh(store, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    Ok(report)
}

fn print_refresh(r: &RefreshReport) -> Result<()> {
    if r.remote {
        outln!("the source is a blob container: images arrive with `termtag pull`")?;
        return Ok(());
    }
    for w in &r.warnings {
        errln!("warning: {w}");
    }
    for (key, why) in &r.broken {
        errln!("broken: {}: {}", for_terminal(key), for_terminal(why));
    }
    outln!("added {} images ({} broken)", r.added, r.broken.len())?;
    Ok(())
}

/// A `--filter` whose `boxes=` counts the proposals the review screen shows.
fn project_filter(project: &Project, text: &str) -> Result<Filter> {
    let mut filter = Filter::parse(text)?;
    filter.proposals_from = project.config.prelabel_threshold;
    Ok(filter)
}

fn print_stats(project: &Project, store: &Store) -> Result<()> {
    let s = store.stats()?;
    outln!(
        "project {} ({}), {} images",
        for_terminal(&project.config.name),
        project.config.task,
        s.images
    )?;
    let statuses: Vec<String> = s
        .by_status
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    outln!("status: {}", statuses.join(", "))?;
    outln!("verified empty: {}", s.verified_empty)?;
    outln!("predicted: {}", s.predicted_images)?;
    let threshold = project.config.prelabel_threshold;
    let p = store.proposal_counts(threshold)?;
    outln!(
        "proposals: {} open (score ≥ {threshold}), {} dismissed, {} superseded by labels",
        p.open,
        p.dismissed,
        p.superseded
    )?;
    outln!("{:<24}{:>8}{:>8}", "class", "labels", "images")?;
    for (name, labels, images) in &s.by_class {
        outln!("  {:<22}{labels:>8}{images:>8}", for_terminal(name))?;
    }
    if !s.by_annotator.is_empty() {
        outln!("{:<24}{:>8}{:>8}", "annotator", "images", "labels")?;
        for (who, (images, labels)) in &s.by_annotator {
            outln!("  {:<22}{images:>8}{labels:>8}", for_terminal(who))?;
        }
    }
    if !s.speed.is_empty() {
        // Active time only: pauses over a minute between two keys are not counted.
        outln!("{:<16}{}", "review speed", crate::store::Speed::HEADER)?;
        let all = crate::store::Speed::total(&s.speed, "all");
        let total = (s.speed.len() > 1).then_some(&all);
        for sp in s.speed.iter().chain(total) {
            outln!("  {:<14}{}", for_terminal(&sp.author), sp.row())?;
        }
    }
    Ok(())
}

fn format_day(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The review screen owns the terminal: logs go to `.termtag/termtag.log` (level from TERMTAG_LOG).
fn log_to_file(project: &Project) {
    crate::logging::to_file(
        &project
            .root
            .join(crate::project::STATE_DIR)
            .join("termtag.log"),
    );
}

/// What the review screen would draw with here, why, and the cell size it fits pictures to.
fn doctor_graphics() -> String {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return "not a terminal: run doctor in the terminal you review in (halfblocks always work)"
            .into();
    }
    let setup = crate::tui::graphics::detect(GraphicsChoice::Auto);
    let (w, h) = setup.cell;
    format!(
        "{} ({}); cell {w}×{h} px",
        setup.kind.name(),
        crate::sanitize::for_terminal(&setup.why)
    )
}

/// Whether the remote is configured and answers, without printing any secret.
fn doctor_remote(project: &Project) -> String {
    let remote =
        crate::project::is_remote(&project.config.source) || project.config.remote.folder.is_some();
    if !remote {
        return "not used (the source is a local folder)".into();
    }
    let check = || -> Result<String> {
        let set = crate::remote::open(project)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let page = rt.block_on(set.images.list_page(&set.prefix, None))?;
        Ok(format!(
            "{} answers; first page lists {} images",
            crate::sanitize::for_terminal(&set.name),
            page.items.len()
        ))
    };
    check().unwrap_or_else(|e| {
        format!(
            "not working: {}",
            crate::remote::auth::redact(&format!("{e:#}"))
        )
    })
}

/// `--class-map FROM=TO`.
fn parse_class_map(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
            Ok((from.trim().to_string(), to.trim().to_string()))
        }
        _ => Err(format!(
            "`{}`: use MODEL_CLASS=PROJECT_CLASS (or MODEL_CLASS=- to drop it), e.g. --class-map cup=mug",
            for_terminal(s)
        )),
    }
}
