//! A small line plot in plain characters: share of mistakes found (up) against share of the
//! images reviewed (across), one mark per strategy. Plain ASCII, so it survives any terminal,
//! a pipe and a log file.

/// One line of the plot: its mark and y(x) at x = i / (len − 1), values in 0..=1.
pub struct Series<'a> {
    pub mark: char,
    pub name: &'a str,
    pub ys: &'a [f64],
}

/// Value of a curve sampled at `x` in 0..=1 (linear between samples).
fn at(ys: &[f64], x: f64) -> f64 {
    match ys.len() {
        0 => 0.0,
        1 => ys[0],
        n => {
            let pos = x * (n - 1) as f64;
            let i = (pos.floor() as usize).min(n - 2);
            let f = pos - i as f64;
            ys[i] * (1.0 - f) + ys[i + 1] * f
        }
    }
}

/// Lines of a `width` × `height` plot with axes (`x_ticks` under its start, middle and end)
/// and a legend; where two series share a cell
/// the one listed first wins.
pub fn render(
    series: &[Series],
    width: usize,
    height: usize,
    x_ticks: [&str; 3],
    x_label: &str,
    y_label: &str,
) -> Vec<String> {
    let mut grid = vec![vec![' '; width]; height];
    for s in series.iter().rev() {
        for (col, row) in (0..width).map(|c| {
            let x = c as f64 / (width - 1).max(1) as f64;
            let y = at(s.ys, x).clamp(0.0, 1.0);
            (c, ((1.0 - y) * (height - 1) as f64).round() as usize)
        }) {
            grid[row][col] = s.mark;
        }
    }
    let mut out = vec![y_label.to_string()];
    for (i, row) in grid.iter().enumerate() {
        let tick = match i {
            0 => "100%",
            _ if i == (height - 1) / 2 => " 50%",
            _ if i == height - 1 => "  0%",
            _ => "    ",
        };
        out.push(format!("{tick} |{}", row.iter().collect::<String>()));
    }
    out.push(format!("     +{}", "-".repeat(width)));
    // Ticks under the axis: at its start, mid-way, and ending at its end.
    let mut axis = vec![' '; width + 8];
    for (at, text) in [
        (6, x_ticks[0]),
        (6 + width / 2 - 1, x_ticks[1]),
        (
            (7 + width).saturating_sub(x_ticks[2].chars().count()),
            x_ticks[2],
        ),
    ] {
        for (i, ch) in text.chars().enumerate() {
            if let Some(c) = axis.get_mut(at + i) {
                *c = ch;
            }
        }
    }
    out.push(axis.into_iter().collect::<String>().trim_end().to_string());
    out.push(format!("      {x_label}"));
    let legend: Vec<String> = series
        .iter()
        .map(|s| format!("{} {}", s.mark, s.name))
        .collect();
    out.push(format!("      {}", legend.join("   ")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_and_step() {
        let diag = [0.0, 0.5, 1.0];
        let lines = render(
            &[Series {
                mark: '*',
                name: "d",
                ys: &diag,
            }],
            5,
            5,
            ["0%", "50%", "100%"],
            "x",
            "y",
        );
        assert_eq!(lines[1], "100% |    *");
        assert_eq!(lines[3], " 50% |  *  ");
        assert_eq!(lines[5], "  0% |*    ");
        assert_eq!(lines[6], "     +-----");
        assert!(lines.last().unwrap().contains("* d"));
        assert!((at(&diag, 0.25) - 0.25).abs() < 1e-12);
    }
}
