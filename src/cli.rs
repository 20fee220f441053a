//! The command line (clap): the commands and their flags, and the dispatch to their bodies in
//! [`crate::commands`].

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::formats::FormatKind;
use crate::model::Task;
use crate::project::Project;
use crate::sanitize::for_terminal;
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
        /// Only this machine's share of the images, K/N (e.g. 3/8), or `auto`: from the scheduler
        /// (Kubernetes Indexed Job, Slurm job array, torchrun / Azure ML distributed job).
        #[arg(long, value_parser = clap::value_parser!(crate::infer::ShardArg))]
        shard: Option<crate::infer::ShardArg>,
        /// Decode threads (default: all cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Predict straight from the blob container (nothing pulled or claimed): this shard's
        /// images are downloaded a few at a time and the predictions written to the labels
        /// container, where a restart resumes and `pull` ranks them. For a fleet of machines.
        #[arg(long)]
        stream: bool,
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
        /// Near-duplicate pictures take turns (as `[queue] diversity = true`); computes the
        /// signatures of waiting pictures that have none first.
        #[arg(long)]
        diversity: bool,
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
    Simulate(SimulateArgs),
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

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Model run whose predictions are replayed (default: the newest that predicted images
    /// with truth).
    #[arg(long)]
    pub run: Option<i64>,
    /// Truth labels file or folder (default: the reviewed labels).
    #[arg(long, requires = "format")]
    pub truth: Option<PathBuf>,
    /// Format of --truth.
    #[arg(long, requires = "truth")]
    pub format: Option<FormatKind>,
    /// Metrics to compare, comma-separated (default: all five; with --rounds the [queue] one).
    #[arg(long, value_delimiter = ',')]
    pub metric: Vec<crate::queue::Metric>,
    /// Random orders (seeds 0..N) averaged as the baseline (default 10; 1 with --rounds).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Also each metric with near-duplicates taken in turns, and count a mistake once per
    /// group of near-duplicate pictures (a copy's mistake is not new).
    #[arg(long)]
    pub diversity: bool,
    /// Pictures whose 32×24 grey thumbnails correlate at least this much are near-duplicates.
    #[arg(long, default_value_t = crate::diversity::DEFAULT_SIMILARITY)]
    pub near_similarity: f32,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
    /// The loop: label the top --batch of the queue, run [train] command, predict, R times.
    #[arg(long, requires_all = ["batch", "train"])]
    pub rounds: Option<usize>,
    /// Images labelled per round.
    #[arg(long, requires = "rounds")]
    pub batch: Option<usize>,
    /// Retrain each round with [train] command (needed by --rounds).
    #[arg(long, requires = "rounds")]
    pub train: bool,
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
    let start = cli.project.unwrap_or_else(|| PathBuf::from("."));
    // These need no project (init and demo make one; doctor reports on this machine too).
    match command {
        Command::Init {
            dir,
            task,
            classes,
            source,
        } => return commands::init::run(&dir, task, &classes, source.as_deref()),
        Command::Demo {
            dir,
            graphics,
            reset,
            offline,
            boards,
            seed,
        } => {
            let opts = crate::demo::DemoOptions { reset, offline };
            return commands::demo::run(&dir, graphics, &opts, boards, seed);
        }
        Command::Doctor => return commands::doctor::run(&start),
        _ => {}
    }
    let project = Project::discover(&start)?;
    let mut store = project.store()?;
    match command {
        Command::Init { .. } | Command::Demo { .. } | Command::Doctor => {
            unreachable!("handled above")
        }
        Command::Label { graphics } => commands::label::run(&project, graphics)?,
        Command::Refresh => commands::refresh::run(&project, &mut store)?,
        Command::Import(args) => commands::import::run(&project, &mut store, &args)?,
        Command::Export {
            format,
            out,
            predictions,
        } => commands::export::run(&project, &store, format, &out, predictions)?,
        Command::Stats => commands::stats::run(&project, &store)?,
        Command::Images(cmd) => commands::images::run(&project, &mut store, cmd)?,
        Command::Classes(cmd) => commands::classes::run(&project, &mut store, cmd)?,
        Command::Predict {
            model,
            labels,
            class_map,
            rerun,
            shard,
            workers,
            stream,
        } => {
            let opts = crate::infer::PredictOptions {
                model,
                labels,
                class_map,
                rerun,
                shard: None,
                workers,
            };
            if stream {
                commands::predict::stream(&project, &store, opts, shard)?
            } else {
                commands::predict::run(&project, &mut store, opts, shard)?
            }
        }
        Command::Queue {
            metric,
            limit,
            order,
            empty,
            seed,
            diversity,
            filter,
        } => commands::queue::run(
            &project, &mut store, &filter, metric, limit, order, empty, seed, diversity,
        )?,
        Command::Eval {
            run,
            out,
            json,
            threshold,
        } => commands::eval::run(&project, &store, run, out, json, threshold)?,
        Command::Simulate(args) => commands::simulate::run(&project, &store, &args)?,
        Command::Train { if_due } => commands::train::run(&project, &mut store, if_due)?,
        Command::Pull { count } => commands::pull::run(&project, &mut store, count)?,
        Command::Push => commands::push::run(&project, &mut store)?,
    }
    Ok(())
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
