//! The SVG charts, parsed as XML: every document has an `svg` root with a
//! size and a viewBox, axes, the tick labels a known range must give, one
//! path per series with one point per finite value, a legend naming the
//! series, escaped labels; the heat map has a cell and a count per entry;
//! the bar chart a bar and a label per row.
//!
//! Set `SIMDNET_SVG_DIR` to a folder to keep the example figures (to open
//! them in a browser).

use roxmltree::{Document, Node};
use simdnet::plot::line::{LineChart, Series};
use simdnet::plot::{bars_svg, confusion_svg, history_svg, Bar, EpochPoint};

const NASTY: &str = "a<b & \"c\" > 'd'";

fn parse(svg: &str) -> Document<'_> {
    let doc = Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
    let w: f64 = root.attribute("width").unwrap().parse().unwrap();
    let h: f64 = root.attribute("height").unwrap().parse().unwrap();
    assert_eq!(root.attribute("viewBox").unwrap(), format!("0 0 {w} {h}"));
    assert!(w >= 200.0 && h >= 100.0, "{w}x{h}");
    doc
}

fn keep(name: &str, svg: &str) {
    if let Some(dir) = std::env::var_os("SIMDNET_SVG_DIR") {
        std::fs::write(std::path::Path::new(&dir).join(name), svg).unwrap();
    }
}

fn has_class(n: &Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split(' ').any(|t| t == class))
}

/// Elements under `n` whose class list has `class`.
fn with_class<'a, 'i>(n: Node<'a, 'i>, class: &str) -> Vec<Node<'a, 'i>> {
    n.descendants().filter(|d| has_class(d, class)).collect()
}

fn texts(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.text().unwrap_or("").to_string()).collect()
}

fn attr(n: &Node, name: &str) -> f64 {
    n.attribute(name)
        .unwrap_or_else(|| panic!("no {name} on {n:?}"))
        .parse()
        .unwrap()
}

/// The points of a path's `d` and how many pieces ("M") it has.
fn path_points(n: &Node) -> (Vec<(f64, f64)>, usize) {
    let d = n.attribute("d").unwrap();
    let mut pts = Vec::new();
    let mut pieces = 0;
    for cmd in d.split(['M', 'L']).map(str::trim).filter(|c| !c.is_empty()) {
        let v: Vec<f64> = cmd.split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(v.len(), 2, "{d}");
        pts.push((v[0], v[1]));
    }
    pieces += d.matches('M').count();
    (pts, pieces)
}

/// The box the axes span: (left, right, top, bottom).
fn axes_box(panel: Node) -> (f64, f64, f64, f64) {
    let x = with_class(panel, "axis")
        .into_iter()
        .find(|n| has_class(n, "x"))
        .unwrap();
    let y = with_class(panel, "axis")
        .into_iter()
        .find(|n| has_class(n, "y"))
        .unwrap();
    assert_eq!(attr(&x, "y1"), attr(&x, "y2"), "the x axis is horizontal");
    assert_eq!(attr(&y, "x1"), attr(&y, "x2"), "the y axis is vertical");
    (attr(&x, "x1"), attr(&x, "x2"), attr(&y, "y1"), attr(&y, "y2"))
}

fn epoch(e: usize, loss: f64, acc: f64, val: Option<(f64, f64)>) -> EpochPoint {
    EpochPoint {
        epoch: e,
        loss,
        accuracy: acc,
        val_loss: val.map(|v| v.0),
        val_accuracy: val.map(|v| v.1),
    }
}

/// The README's 4-epoch run.
fn workshop_history() -> Vec<EpochPoint> {
    vec![
        epoch(1, 0.5813, 0.8388, Some((0.3017, 0.9140))),
        epoch(2, 0.2779, 0.9195, Some((0.2437, 0.9306))),
        epoch(3, 0.2361, 0.9330, Some((0.2180, 0.9355))),
        epoch(4, 0.2113, 0.9393, Some((0.2006, 0.9416))),
    ]
}

#[test]
fn history_has_two_panels_with_axes_ticks_series_and_legend() {
    let svg = history_svg(&format!("784-16-16-10 {NASTY}"), &workshop_history());
    keep("history.svg", &svg);
    let doc = parse(&svg);
    let title = with_class(doc.root_element(), "figure-title");
    assert_eq!(texts(&title), [format!("784-16-16-10 {NASTY}")]);
    let panels = with_class(doc.root_element(), "panel");
    assert_eq!(panels.len(), 2);
    let expected_y: [&[&str]; 2] = [
        &["0.2", "0.3", "0.4", "0.5", "0.6"],
        &["0.82", "0.84", "0.86", "0.88", "0.90", "0.92", "0.94", "0.96"],
    ];
    for (panel, (name, y_ticks)) in panels.iter().zip(
        [("Loss", "loss"), ("Accuracy", "accuracy")]
            .iter()
            .zip(expected_y),
    ) {
        assert_eq!(texts(&with_class(*panel, "title")), [name.0]);
        assert_eq!(texts(&with_class(*panel, "axis-label")), ["epoch", name.1]);
        assert_eq!(texts(&with_class(*panel, "tick-x")), ["1", "2", "3", "4"]);
        assert_eq!(texts(&with_class(*panel, "tick-y")), y_ticks, "{}", name.0);
        assert_eq!(texts(&with_class(*panel, "legend")), ["training", "validation"]);
        let (left, right, top, bottom) = axes_box(*panel);
        let series = with_class(*panel, "series");
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].attribute("data-name"), Some("training"));
        assert_eq!(series[1].attribute("data-name"), Some("validation"));
        assert_eq!(series[0].attribute("stroke-dasharray"), None, "training is solid");
        assert!(
            series[1].attribute("stroke-dasharray").is_some(),
            "validation is dashed"
        );
        assert_ne!(series[0].attribute("stroke"), series[1].attribute("stroke"));
        for s in &series {
            let (pts, pieces) = path_points(s);
            assert_eq!((pts.len(), pieces), (4, 1));
            for &(x, y) in &pts {
                assert!(
                    (left..=right).contains(&x) && (top..=bottom).contains(&y),
                    "{x},{y} outside"
                );
            }
            // Epochs 1 and 4 are the first and last x ticks.
            let ticks = with_class(*panel, "tick-x");
            assert!(
                (pts[0].0 - attr(&ticks[0], "x")).abs() < 0.01
                    && (pts[3].0 - attr(&ticks[3], "x")).abs() < 0.01
            );
        }
        assert_eq!(with_class(*panel, "marker").len(), 8);
    }
    // Training loss falls: its y on screen grows (SVG's y points down).
    let (loss, _) = path_points(&with_class(panels[0], "series")[0]);
    assert!(loss.windows(2).all(|w| w[1].1 > w[0].1), "{loss:?}");
}

#[test]
fn history_without_validation_with_one_epoch_and_gaps() {
    // One epoch, no validation: one series per panel, one point, ticks around epoch 1.
    let svg = history_svg("one", &[epoch(1, 2.3, 0.1, None)]);
    let doc = parse(&svg);
    for panel in with_class(doc.root_element(), "panel") {
        let series = with_class(panel, "series");
        assert_eq!(series.len(), 1);
        assert_eq!(path_points(&series[0]).0.len(), 1);
        assert_eq!(
            with_class(panel, "marker").len(),
            1,
            "a lone point shows as a marker"
        );
        assert_eq!(texts(&with_class(panel, "tick-x")), ["0", "1", "2"]);
        assert_eq!(texts(&with_class(panel, "legend")), ["training"]);
    }
    // NaN and infinity are skipped: the line breaks at them.
    let epochs = vec![
        epoch(1, 2.3, 0.1, Some((2.2, 0.2))),
        epoch(2, f64::NAN, 0.5, Some((f64::INFINITY, 0.6))),
        epoch(3, 1.0, 0.7, None),
        epoch(4, 0.5, 0.8, Some((0.6, 0.8))),
    ];
    let svg = history_svg("gaps", &epochs);
    keep("history-gaps.svg", &svg);
    let doc = parse(&svg);
    let panels = with_class(doc.root_element(), "panel");
    let loss = with_class(panels[0], "series");
    assert_eq!(path_points(&loss[0]), (path_points(&loss[0]).0, 2));
    assert_eq!(path_points(&loss[0]).0.len(), 3);
    assert_eq!(path_points(&loss[1]).0.len(), 2);
    assert_eq!(
        path_points(&loss[1]).1,
        2,
        "validation has gaps at epochs 2 and 3"
    );
    assert_eq!(
        texts(&with_class(panels[0], "tick-y")),
        ["0.5", "1.0", "1.5", "2.0", "2.5"]
    );
    // Nothing at all still makes a figure.
    let doc_text = history_svg("empty", &[]);
    let doc = parse(&doc_text);
    assert_eq!(with_class(doc.root_element(), "no-data").len(), 2);
}

#[test]
fn line_chart_flat_series_distinct_colours_and_escaped_names() {
    let flat = Series {
        name: NASTY.into(),
        points: vec![(0.0, 2.3), (1.0, 2.3), (2.0, 2.3)],
        dashed: false,
        color: 0,
    };
    let mut series = vec![flat];
    for c in 1..4 {
        series.push(Series {
            name: format!("s{c}"),
            points: vec![(0.0, 2.3), (2.0, 2.3)],
            dashed: c % 2 == 0,
            color: c,
        });
    }
    let chart = LineChart {
        title: "flat".into(),
        x_label: "x <unit>".into(),
        y_label: "y".into(),
        series,
        integer_x: false,
    };
    let svg = chart.to_svg(640.0, 400.0);
    assert!(
        svg.contains("a&lt;b &amp; &quot;c&quot; &gt;"),
        "names are escaped"
    );
    let doc = parse(&svg);
    let root = doc.root_element();
    assert_eq!(texts(&with_class(root, "legend"))[0], NASTY);
    assert_eq!(texts(&with_class(root, "axis-label"))[0], "x <unit>");
    let ticks: Vec<f64> = texts(&with_class(root, "tick-y"))
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(
        ticks[0] < 2.3 && *ticks.last().unwrap() > 2.3,
        "a flat line sits inside the axis: {ticks:?}"
    );
    let paths = with_class(root, "series");
    assert_eq!(paths.len(), 4);
    let colours: std::collections::HashSet<_> =
        paths.iter().map(|p| p.attribute("stroke").unwrap()).collect();
    assert_eq!(colours.len(), 4, "each series has its own colour");
    let (pts, _) = path_points(&paths[0]);
    assert!(pts.iter().all(|p| (p.1 - pts[0].1).abs() < 1e-9));
}

#[test]
fn bars_have_one_bar_label_and_value_per_row() {
    let long = "(16, 16, 10) relu,relu 4 ep scaled, and a comment far too long to show whole in the chart";
    let rows = vec![
        Bar {
            label: "(16, 16, 10) relu,relu 4 ep scaled".into(),
            value: 0.9416,
            spread: Some(0.003),
        },
        Bar {
            label: NASTY.into(),
            value: 0.5,
            spread: None,
        },
        Bar {
            label: long.into(),
            value: 0.25,
            spread: None,
        },
        Bar {
            label: "diverged".into(),
            value: f64::NAN,
            spread: None,
        },
    ];
    let svg = bars_svg("Sweep <test>", "test accuracy", &rows);
    keep("bars.svg", &svg);
    let doc = parse(&svg);
    let root = doc.root_element();
    assert_eq!(texts(&with_class(root, "title")), ["Sweep <test>"]);
    assert_eq!(texts(&with_class(root, "axis-label")), ["test accuracy"]);
    assert_eq!(
        texts(&with_class(root, "tick-x")),
        ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    );
    assert_eq!(with_class(root, "axis").len(), 2);
    let groups = with_class(root, "bar-row");
    assert_eq!(groups.len(), 4);
    // The whole label is the row's tooltip; the shown one is cut when too long.
    let tooltips: Vec<_> = groups
        .iter()
        .map(|g| {
            g.children()
                .find(|c| c.has_tag_name("title"))
                .unwrap()
                .text()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(tooltips, rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>());
    let labels = texts(&with_class(root, "bar-label"));
    assert_eq!(labels[..2], [rows[0].label.clone(), NASTY.to_string()]);
    assert!(labels[2].ends_with('…') && long.starts_with(labels[2].trim_end_matches('…')));
    let bars = with_class(root, "bar");
    assert_eq!(bars.len(), 3, "no bar for NaN");
    let (left, right, _, _) = axes_box(root);
    for (b, r) in bars.iter().zip(&rows) {
        assert!((attr(b, "x") - left).abs() < 0.01);
        assert!((attr(b, "width") / (right - left) - r.value).abs() < 0.001);
    }
    assert_eq!(
        texts(&with_class(root, "value")),
        ["0.9416 ± 0.003", "0.5", "0.25", "n/a"]
    );
    assert_eq!(with_class(groups[0], "error-bar").len(), 3);
    assert_eq!(with_class(root, "error-bar").len(), 3);
    // No rows still makes a chart.
    let svg = bars_svg("none", "x", &[]);
    assert_eq!(with_class(parse(&svg).root_element(), "no-data").len(), 1);
}

#[test]
fn heat_map_has_a_cell_and_count_per_entry() {
    // Row t: 90 + t right, the rest spread over the other digits.
    let counts: Vec<Vec<u64>> = (0..10)
        .map(|t| {
            (0..10)
                .map(|p| {
                    if p == t {
                        900 + t as u64
                    } else {
                        (t * p % 7) as u64
                    }
                })
                .collect()
        })
        .collect();
    let labels: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let svg = confusion_svg(&format!("Confusion {NASTY}"), &counts, &labels);
    keep("confusion.svg", &svg);
    let doc = parse(&svg);
    let root = doc.root_element();
    assert_eq!(texts(&with_class(root, "title")), [format!("Confusion {NASTY}")]);
    assert_eq!(
        texts(&with_class(root, "axis-label")),
        ["predicted label", "true label"]
    );
    assert_eq!(texts(&with_class(root, "tick-x")), labels);
    assert_eq!(texts(&with_class(root, "tick-y")), labels);
    let cells = with_class(root, "cell");
    assert_eq!(cells.len(), 100);
    let shown = with_class(root, "count");
    assert_eq!(shown.len(), 100);
    for (i, (cell, text)) in cells.iter().zip(&shown).enumerate() {
        let (t, p) = (i / 10, i % 10);
        assert_eq!(cell.attribute("data-true"), Some(t.to_string().as_str()));
        assert_eq!(cell.attribute("data-predicted"), Some(p.to_string().as_str()));
        assert_eq!(
            cell.attribute("data-count"),
            Some(counts[t][p].to_string().as_str())
        );
        assert_eq!(text.text(), Some(counts[t][p].to_string().as_str()));
        // The diagonal is dark with white counts; the rest light with dark counts.
        let white = text.attribute("fill") == Some("#ffffff");
        assert_eq!(white, t == p, "cell {t},{p}");
        // Row t, column p: rows go down, columns go right.
        assert!((attr(cell, "x") - attr(&cells[t * 10], "x") - p as f64 * attr(cell, "width")).abs() < 0.01);
        assert!((attr(cell, "y") - attr(&cells[p], "y") - t as f64 * attr(cell, "height")).abs() < 0.01);
    }
    // A row with no examples is all white, and ragged input does not panic.
    let svg = confusion_svg("ragged", &[vec![0, 0], vec![3]], &[]);
    let doc = parse(&svg);
    let cells = with_class(doc.root_element(), "cell");
    assert_eq!(cells.len(), 4);
    assert_eq!(cells[0].attribute("fill"), cells[1].attribute("fill"));
    assert_eq!(cells[3].attribute("data-count"), Some("0"));
}
