//! A tiny SVG writer: a canvas of a fixed size that elements are appended
//! to, with every attribute value and every text escaped, so a label such as
//! `<&>"` can never break the document.

use std::fmt::Write as _;

/// The font every chart uses (sans-serif, available in any browser).
pub const FONT: &str = "Helvetica, Arial, sans-serif";

/// Average width of one character, as a fraction of the font size: enough
/// to lay out labels without measuring them (a little generous on purpose).
const CHAR_WIDTH: f64 = 0.6;

/// `text` with the five XML special characters replaced by entities.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0: show a space instead.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => s.push(' '),
            c => s.push(c),
        }
    }
    s
}

/// A coordinate or length, short: at most two decimals, no trailing zeros.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let s = format!("{:.2}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The width `text` takes at `size` pixels, estimated from its length.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * CHAR_WIDTH
}

/// `text` cut to at most `max_chars` characters, with `…` marking a cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// One attribute value, converted to text by the caller (use [`num`] for numbers).
pub type Attr<'a> = (&'a str, String);

/// An SVG document being written: its size and the elements so far.
#[derive(Clone, Debug)]
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

impl Svg {
    /// An empty canvas of `width x height` pixels with a white background.
    pub fn new(width: f64, height: f64) -> Svg {
        let mut svg = Svg {
            width,
            height,
            body: String::new(),
        };
        svg.rect(
            0.0,
            0.0,
            width,
            height,
            "#ffffff",
            &[("class", "background".into())],
        );
        svg
    }

    /// The canvas width in pixels.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// The canvas height in pixels.
    pub fn height(&self) -> f64 {
        self.height
    }

    /// An element with no content: `<name a="v" .../>`.
    pub fn element(&mut self, name: &str, attrs: &[Attr]) {
        self.open(name, attrs);
        self.body.truncate(self.body.len() - 2);
        self.body.push_str("/>\n");
    }

    /// The start tag `<name a="v" ...>` of an element closed by [`close`](Self::close).
    pub fn open(&mut self, name: &str, attrs: &[Attr]) {
        let _ = write!(self.body, "<{name}");
        for (k, v) in attrs {
            let _ = write!(self.body, " {k}=\"{}\"", escape(v));
        }
        self.body.push_str(">\n");
    }

    /// The end tag `</name>`.
    pub fn close(&mut self, name: &str) {
        let _ = writeln!(self.body, "</{name}>");
    }

    /// An element holding text: `<name ...>text</name>`, the text escaped.
    pub fn element_with_text(&mut self, name: &str, attrs: &[Attr], text: &str) {
        self.open(name, attrs);
        self.body.truncate(self.body.len() - 1);
        let _ = writeln!(self.body, "{}</{name}>", escape(text));
    }

    /// A straight line from `(x1, y1)` to `(x2, y2)`.
    pub fn line(
        &mut self,
        (x1, y1): (f64, f64),
        (x2, y2): (f64, f64),
        stroke: &str,
        width: f64,
        extra: &[Attr],
    ) {
        let mut attrs: Vec<Attr> = vec![
            ("x1", num(x1)),
            ("y1", num(y1)),
            ("x2", num(x2)),
            ("y2", num(y2)),
            ("stroke", stroke.into()),
            ("stroke-width", num(width)),
        ];
        attrs.extend_from_slice(extra);
        self.element("line", &attrs);
    }

    /// A filled rectangle with its top-left corner at `(x, y)`.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &[Attr]) {
        let mut attrs: Vec<Attr> = vec![
            ("x", num(x)),
            ("y", num(y)),
            ("width", num(w.max(0.0))),
            ("height", num(h.max(0.0))),
            ("fill", fill.into()),
        ];
        attrs.extend_from_slice(extra);
        self.element("rect", &attrs);
    }

    /// A filled circle.
    pub fn circle(&mut self, (cx, cy): (f64, f64), r: f64, fill: &str, extra: &[Attr]) {
        let mut attrs: Vec<Attr> = vec![
            ("cx", num(cx)),
            ("cy", num(cy)),
            ("r", num(r)),
            ("fill", fill.into()),
        ];
        attrs.extend_from_slice(extra);
        self.element("circle", &attrs);
    }

    /// Text at `(x, y)` (the baseline), anchored `start`, `middle` or `end`.
    pub fn text(&mut self, (x, y): (f64, f64), text: &str, size: f64, anchor: &str, extra: &[Attr]) {
        let mut attrs: Vec<Attr> = vec![
            ("x", num(x)),
            ("y", num(y)),
            ("font-size", num(size)),
            ("text-anchor", anchor.into()),
        ];
        attrs.extend_from_slice(extra);
        self.element_with_text("text", &attrs, text);
    }

    /// The finished document: the root `svg` element with its size and viewBox.
    pub fn finish(self) -> String {
        let (w, h) = (num(self.width), num(self.height));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"{FONT}\" fill=\"#222222\">\n{}</svg>\n",
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_text_and_attributes() {
        assert_eq!(escape(r#"<a & "b">'"#), "&lt;a &amp; &quot;b&quot;&gt;&apos;");
        let mut svg = Svg::new(10.0, 10.0);
        svg.text((1.0, 2.0), "x<y", 12.0, "start", &[("class", "a\"b".into())]);
        let s = svg.finish();
        assert!(
            s.contains(">x&lt;y</text>") && s.contains("class=\"a&quot;b\""),
            "{s}"
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.256), "1.26");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
