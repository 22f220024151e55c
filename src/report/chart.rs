//! The report's chart as a PNG, drawn here without fonts: one panel per tracked query (in the
//! KPI table's order), one bar per bucket, grey for all mentions and red for the negative ones,
//! each panel scaled to its own busiest bucket. Labels (query names, scale, times) are text
//! around the image in the HTML.

use std::io::Write;

use super::data::ChartData;

/// Width of the image in pixels.
pub const WIDTH: u32 = 720;
/// Height of one query's panel in pixels.
pub const PANEL_HEIGHT: u32 = 90;
const GAP: u32 = 12;
const MARGIN: u32 = 8;

const BACKGROUND: [u8; 3] = [255, 255, 255];
const PANEL: [u8; 3] = [244, 245, 247];
const AXIS: [u8; 3] = [150, 150, 150];
const TOTAL: [u8; 3] = [170, 178, 189];
const NEGATIVE: [u8; 3] = [214, 48, 49];

/// A drawn chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The PNG file's bytes.
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Each panel, top to bottom: the query and the bucket count its full height stands for.
    pub panels: Vec<(String, u64)>,
}

/// An RGB image being drawn.
struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Canvas {
        let mut rgb = Vec::with_capacity((width * height * 3) as usize);
        for _ in 0..width * height {
            rgb.extend_from_slice(&BACKGROUND);
        }
        Canvas { width, height, rgb }
    }

    /// Fills `[x, x + w) × [y, y + h)`, clipped to the canvas.
    fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, colour: [u8; 3]) {
        for row in y..(y + h).min(self.height) {
            for col in x..(x + w).min(self.width) {
                let i = ((row * self.width + col) * 3) as usize;
                self.rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }
}

/// Draws `data`.
pub fn draw(data: &ChartData) -> Chart {
    let panels = data.series.len().max(1) as u32;
    let height = MARGIN * 2 + panels * PANEL_HEIGHT + (panels - 1) * GAP;
    let mut c = Canvas::new(WIDTH, height);
    let inner = WIDTH - 2 * MARGIN;
    let n = data.starts.len().max(1) as u32;
    let slot = (inner / n).max(1);
    let bar = if slot > 3 { slot - 2 } else { slot };
    let mut scales = Vec::new();
    for (p, s) in data.series.iter().enumerate() {
        let top = MARGIN + p as u32 * (PANEL_HEIGHT + GAP);
        c.fill(MARGIN, top, inner, PANEL_HEIGHT, PANEL);
        let max = s.total.iter().copied().max().unwrap_or(0);
        scales.push((s.query.clone(), max));
        let usable = PANEL_HEIGHT - 4;
        let px = |v: u64| -> u32 {
            if max == 0 {
                0
            } else {
                // At least one pixel for any mention, so a quiet bucket is not lost.
                ((v * u64::from(usable)).div_ceil(max) as u32).min(usable)
            }
        };
        let base = top + PANEL_HEIGHT - 1;
        for (i, (&total, &neg)) in s.total.iter().zip(&s.negative).enumerate() {
            let x = MARGIN + i as u32 * slot + (slot - bar) / 2;
            let (ht, hn) = (px(total), px(neg));
            c.fill(x, base - ht, bar, ht, TOTAL);
            c.fill(x, base - hn, bar, hn, NEGATIVE);
        }
        c.fill(MARGIN, base, inner, 1, AXIS);
    }
    Chart {
        png: encode_png(c.width, c.height, &c.rgb),
        width: c.width,
        height: c.height,
        panels: scales,
    }
}

/// An 8-bit RGB PNG of `rgb` (rows top to bottom, no filtering, zlib-compressed).
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    assert_eq!(
        rgb.len(),
        (width * height * 3) as usize,
        "one RGB triple per pixel"
    );
    let mut raw = Vec::with_capacity(rgb.len() + height as usize);
    for row in rgb.chunks(width as usize * 3) {
        raw.push(0); // filter type None
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).expect("writing to memory");
    let idat = z.finish().expect("writing to memory");

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &idat[..]),
        (b"IEND", &[][..]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32fast::hash(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    png
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::Series;
    use chrono::Utc;
    use std::io::Read;

    /// Width, height and pixels of a PNG written by [`encode_png`], with every chunk's CRC checked.
    pub fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (mut at, mut idat, mut dims) = (8, Vec::new(), (0, 0));
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let body = &png[at + 4..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc32fast::hash(body), crc);
            match &body[..4] {
                b"IHDR" => {
                    dims = (
                        u32::from_be_bytes(body[4..8].try_into().unwrap()),
                        u32::from_be_bytes(body[8..12].try_into().unwrap()),
                    )
                }
                b"IDAT" => idat.extend_from_slice(&body[4..]),
                _ => {}
            }
            at += 12 + len;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&idat[..])
            .read_to_end(&mut raw)
            .unwrap();
        let rgb = raw
            .chunks(dims.0 as usize * 3 + 1)
            .flat_map(|r| r[1..].to_vec())
            .collect();
        (dims.0, dims.1, rgb)
    }

    #[test]
    fn bars_show_totals_in_grey_and_negatives_in_red() {
        let data = ChartData {
            bucket_s: 3_600,
            starts: vec![Utc::now(); 4],
            series: vec![
                Series {
                    query: "nusapay".into(),
                    negative: vec![0, 2, 0, 0],
                    total: vec![1, 4, 0, 0],
                },
                Series {
                    query: "kopikita".into(),
                    negative: vec![0; 4],
                    total: vec![0; 4],
                },
            ],
        };
        let chart = draw(&data);
        let (w, h, rgb) = decode(&chart.png);
        assert_eq!((w, h), (WIDTH, 2 * MARGIN + 2 * PANEL_HEIGHT + GAP));
        assert_eq!((chart.width, chart.height), (w, h));
        assert_eq!(
            chart.panels,
            vec![("nusapay".to_string(), 4), ("kopikita".to_string(), 0)]
        );
        let at = |x: u32, y: u32| -> [u8; 3] {
            let i = ((y * w + x) * 3) as usize;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        let slot = (WIDTH - 2 * MARGIN) / 4;
        let middle = |bucket: u32| MARGIN + bucket * slot + slot / 2;
        let base = MARGIN + PANEL_HEIGHT - 1;
        // Bucket 1: full height, the lower half red.
        assert_eq!(at(middle(1), base - 1), NEGATIVE);
        assert_eq!(at(middle(1), base - (PANEL_HEIGHT - 4) + 1), TOTAL);
        assert_eq!(at(middle(1), base - (PANEL_HEIGHT - 4) / 2 - 2), TOTAL);
        // Bucket 0: a quarter high, no red; bucket 2 empty.
        assert_eq!(at(middle(0), base - 1), TOTAL);
        assert_eq!(at(middle(0), base - (PANEL_HEIGHT - 4) / 2), PANEL);
        assert_eq!(at(middle(2), base - 1), PANEL);
        // The second, empty panel has no bars.
        let base2 = base + PANEL_HEIGHT + GAP;
        assert_eq!(at(middle(1), base2 - 1), PANEL);
    }
}
