//! A reader for fastText supervised models (`.bin` and quantised `.ftz`), enough to run the
//! language-identification model lid.176: the whole label distribution for one line of text.
//!
//! Written from the file layout of fastText 0.9 (`FastText::saveModel`: magic and version,
//! `Args`, `Dictionary`, the input matrix, the output matrix; `QuantMatrix` and
//! `ProductQuantizer` for `.ftz`) and its prediction path (`Dictionary::getLine` with subword
//! hashing, the mean of input rows, then softmax or the hierarchical softmax tree). Checked
//! against fastText's own predictions in `tests/lid.rs`.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use crate::text::hash::FastMap;

const MAGIC: i32 = 793_712_314;
const EOS: &str = "</s>";
const LABEL_PREFIX: &str = "__label__";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    HierarchicalSoftmax,
    NegativeSampling,
    Softmax,
    OneVsAll,
}

/// A dense or product-quantised matrix, read-only.
enum Matrix {
    Dense {
        cols: usize,
        data: Vec<f32>,
    },
    Quant {
        pq: Quantizer,
        codes: Vec<u8>,
        norms: Option<(Quantizer, Vec<u8>)>,
    },
}

/// fastText's `ProductQuantizer` with 256 centroids per sub-quantizer.
struct Quantizer {
    nsubq: usize,
    dsub: usize,
    lastdsub: usize,
    centroids: Vec<f32>,
}

const KSUB: usize = 256;

impl Quantizer {
    fn centroid(&self, m: usize, i: u8) -> &[f32] {
        let i = i as usize;
        if m == self.nsubq - 1 {
            let at = m * KSUB * self.dsub + i * self.lastdsub;
            &self.centroids[at..at + self.lastdsub]
        } else {
            let at = (m * KSUB + i) * self.dsub;
            &self.centroids[at..at + self.dsub]
        }
    }

    fn add_code(&self, x: &mut [f32], code: &[u8], alpha: f32) {
        for (m, &c) in code.iter().enumerate() {
            let at = m * self.dsub;
            for (xi, ci) in x[at..].iter_mut().zip(self.centroid(m, c)) {
                *xi += alpha * ci;
            }
        }
    }

    fn dot_code(&self, x: &[f32], code: &[u8], alpha: f32) -> f32 {
        let mut sum = 0.0;
        for (m, &c) in code.iter().enumerate() {
            let at = m * self.dsub;
            sum += x[at..]
                .iter()
                .zip(self.centroid(m, c))
                .map(|(a, b)| a * b)
                .sum::<f32>();
        }
        sum * alpha
    }
}

impl Matrix {
    fn norm(&self, row: usize) -> f32 {
        match self {
            Matrix::Quant {
                norms: Some((npq, codes)),
                ..
            } => npq.centroid(0, codes[row])[0],
            _ => 1.0,
        }
    }

    fn add_row(&self, x: &mut [f32], row: usize) {
        match self {
            Matrix::Dense { cols, data } => {
                for (xi, v) in x.iter_mut().zip(&data[row * cols..(row + 1) * cols]) {
                    *xi += v;
                }
            }
            Matrix::Quant { pq, codes, .. } => {
                let code = &codes[row * pq.nsubq..(row + 1) * pq.nsubq];
                pq.add_code(x, code, self.norm(row));
            }
        }
    }

    fn dot_row(&self, x: &[f32], row: usize) -> f32 {
        match self {
            Matrix::Dense { cols, data } => x
                .iter()
                .zip(&data[row * cols..(row + 1) * cols])
                .map(|(a, b)| a * b)
                .sum(),
            Matrix::Quant { pq, codes, .. } => {
                let code = &codes[row * pq.nsubq..(row + 1) * pq.nsubq];
                pq.dot_code(x, code, self.norm(row))
            }
        }
    }
}

/// One node of the hierarchical-softmax tree (leaves are labels).
#[derive(Clone, Copy)]
struct Node {
    left: i64,
    right: i64,
    count: i64,
}

/// A loaded fastText supervised model.
pub struct FastText {
    dim: usize,
    minn: usize,
    maxn: usize,
    bucket: u32,
    word_ngrams: usize,
    loss: Loss,
    /// Word -> its input rows (the word itself and its subword buckets).
    words: FastMap<String, Vec<u32>>,
    nwords: u32,
    labels: Vec<String>,
    /// A quantised model's kept buckets: bucket -> row offset, or -1 when pruned (dense: one
    /// lookup per character n-gram is the hot path).
    prune: Option<Vec<i32>>,
    input: Matrix,
    output: Matrix,
    tree: Vec<Node>,
    /// Each tree node's parent and whether it is the parent's right child (root: `None`).
    parents: Vec<Option<(usize, bool)>>,
}

struct Reader<R> {
    inner: R,
    what: String,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .with_context(|| format!("{}: the file ends early", self.what))?;
        Ok(b)
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.bytes()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.bytes()?))
    }
    fn bool(&mut self) -> Result<bool> {
        Ok(self.bytes::<1>()?[0] != 0)
    }
    fn usize(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.i64()?;
        ensure!(
            v >= 0 && (v as u64) <= max as u64,
            "{}: {what} {v} is out of range",
            self.what
        );
        Ok(v as usize)
    }
    fn small(&mut self, what: &str) -> Result<usize> {
        let v = self.i32()?;
        ensure!(
            (0..=1 << 24).contains(&v),
            "{}: {what} {v} is out of range",
            self.what
        );
        Ok(v as usize)
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        let mut raw = vec![0u8; n * 4];
        self.inner
            .read_exact(&mut raw)
            .with_context(|| format!("{}: the file ends early", self.what))?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn u8s(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut raw = vec![0u8; n];
        self.inner
            .read_exact(&mut raw)
            .with_context(|| format!("{}: the file ends early", self.what))?;
        Ok(raw)
    }
    fn word(&mut self) -> Result<String> {
        let mut raw = Vec::new();
        loop {
            let [b] = self.bytes::<1>()?;
            if b == 0 {
                break;
            }
            raw.push(b);
            ensure!(
                raw.len() <= 4096,
                "{}: a dictionary word is over 4096 bytes",
                self.what
            );
        }
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    fn quantizer(&mut self) -> Result<Quantizer> {
        let dim = self.small("quantizer dim")?;
        let nsubq = self.small("quantizer nsubq")?;
        let dsub = self.small("quantizer dsub")?;
        let lastdsub = self.small("quantizer lastdsub")?;
        ensure!(nsubq > 0 && dsub > 0, "{}: an empty quantizer", self.what);
        let centroids = self.f32s(dim * KSUB)?;
        Ok(Quantizer {
            nsubq,
            dsub,
            lastdsub,
            centroids,
        })
    }

    /// A matrix's `(rows, cols)`, checked against the model's dimension.
    fn shape(&mut self, dim: usize) -> Result<usize> {
        let rows = self.usize("rows", 1 << 28)?;
        let cols = self.usize("cols", 1 << 16)?;
        ensure!(
            cols == dim,
            "{}: matrix has {cols} columns, model dim is {dim}",
            self.what
        );
        Ok(rows)
    }

    fn matrix(&mut self, quant: bool, dim: usize) -> Result<(usize, Matrix)> {
        if quant {
            let qnorm = self.bool()?;
            let rows = self.shape(dim)?;
            let codesize = self.small("codesize")?;
            let codes = self.u8s(codesize)?;
            let pq = self.quantizer()?;
            ensure!(
                codesize == rows * pq.nsubq && (pq.nsubq - 1) * pq.dsub + pq.lastdsub == dim,
                "{}: quantizer shape does not match the matrix",
                self.what
            );
            let norms = if qnorm {
                let codes = self.u8s(rows)?;
                Some((self.quantizer()?, codes))
            } else {
                None
            };
            Ok((rows, Matrix::Quant { pq, codes, norms }))
        } else {
            let rows = self.shape(dim)?;
            let data = self.f32s(rows * dim)?;
            Ok((rows, Matrix::Dense { cols: dim, data }))
        }
    }
}

/// fastText's string hash: FNV-1a over the bytes, each sign-extended as C++ `int8_t`.
fn hash(s: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in s {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

impl FastText {
    /// Loads a model file; the error names the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<FastText> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open the fastText model {}", path.display()))?;
        Self::read(std::io::BufReader::new(file), &path.display().to_string())
    }

    /// Reads a model from `input`; `what` names it in errors.
    pub fn read(input: impl Read, what: &str) -> Result<FastText> {
        let mut r = Reader {
            inner: input,
            what: what.to_string(),
        };
        ensure!(
            r.i32()? == MAGIC,
            "{what}: not a fastText model (bad magic number)"
        );
        let version = r.i32()?;
        ensure!(
            version == 12,
            "{what}: fastText file version {version}, expected 12"
        );
        let dim = r.small("dim")?;
        let _ws = r.i32()?;
        let _epoch = r.i32()?;
        let _min_count = r.i32()?;
        let _neg = r.i32()?;
        let word_ngrams = r.small("wordNgrams")?;
        let loss = match r.i32()? {
            1 => Loss::HierarchicalSoftmax,
            2 => Loss::NegativeSampling,
            3 => Loss::Softmax,
            4 => Loss::OneVsAll,
            other => bail!("{what}: unknown loss {other}"),
        };
        let model = r.i32()?;
        ensure!(
            model == 3,
            "{what}: not a supervised model (model type {model})"
        );
        let bucket = r.small("bucket")? as u32;
        let minn = r.small("minn")?;
        let maxn = r.small("maxn")?;
        let _lr_update = r.i32()?;
        let _t = r.bytes::<8>()?;

        let size = r.small("dictionary size")?;
        let nwords = r.small("nwords")?;
        let nlabels = r.small("nlabels")?;
        ensure!(
            nwords + nlabels == size && nlabels > 0,
            "{what}: inconsistent dictionary"
        );
        let _ntokens = r.i64()?;
        let prune_size = r.i64()?;
        let mut entries = Vec::with_capacity(size);
        for _ in 0..size {
            let word = r.word()?;
            let count = r.i64()?;
            let kind = r.bytes::<1>()?[0];
            entries.push((word, count, kind));
        }
        let prune = if prune_size > 0 {
            ensure!(
                prune_size <= 1 << 28,
                "{what}: prune index {prune_size} is out of range"
            );
            let mut table = vec![-1i32; bucket as usize];
            for _ in 0..prune_size {
                let from = r.i32()?;
                let to = r.i32()?;
                ensure!(
                    from >= 0 && (from as u32) < bucket && to >= 0,
                    "{what}: prune index entry {from} -> {to} is out of range"
                );
                table[from as usize] = to;
            }
            Some(table)
        } else {
            None
        };
        let quant_in = r.bool()?;
        let (in_rows, input) = r.matrix(quant_in, dim)?;
        let quant_out = r.bool()?;
        let (out_rows, output) = r.matrix(quant_out, dim)?;

        let mut ft = FastText {
            dim,
            minn,
            maxn,
            bucket,
            word_ngrams,
            loss,
            words: FastMap::default(),
            nwords: nwords as u32,
            labels: Vec::with_capacity(nlabels),
            prune,
            input,
            output,
            tree: Vec::new(),
            parents: Vec::new(),
        };
        let mut label_counts = Vec::with_capacity(nlabels);
        for (i, (word, count, kind)) in entries.into_iter().enumerate() {
            if kind == 1 {
                ensure!(i >= nwords, "{what}: a label among the words");
                label_counts.push(count);
                ft.labels
                    .push(word.strip_prefix(LABEL_PREFIX).unwrap_or(&word).to_string());
            } else {
                let mut rows = vec![i as u32];
                if word != EOS {
                    ft.subwords(&format!("<{word}>"), &mut rows);
                }
                ft.words.insert(word, rows);
            }
        }
        let max_row = ft.words.values().flatten().copied().max().unwrap_or(0) as usize;
        ensure!(
            max_row < in_rows,
            "{what}: the input matrix has too few rows"
        );
        let needed = match loss {
            Loss::HierarchicalSoftmax => nlabels - 1,
            _ => nlabels,
        };
        ensure!(
            out_rows >= needed,
            "{what}: the output matrix has too few rows"
        );
        if loss == Loss::HierarchicalSoftmax {
            ft.tree = huffman(&label_counts);
            ft.parents = vec![None; ft.tree.len()];
            for (i, t) in ft.tree.iter().enumerate().skip(nlabels) {
                ft.parents[t.left as usize] = Some((i, false));
                ft.parents[t.right as usize] = Some((i, true));
            }
        }
        Ok(ft)
    }

    /// The labels, without fastText's `__label__` prefix, in the model's order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    fn push_bucket(&self, h: u32, rows: &mut Vec<u32>) {
        let id = (h % self.bucket) as i32;
        let id = match &self.prune {
            None => id,
            Some(table) => match table[id as usize] {
                -1 => return,
                to => to,
            },
        };
        rows.push(self.nwords + id as u32);
    }

    /// `Dictionary::computeSubwords`: character n-grams of `word` (already `<`…`>`), by UTF-8
    /// character, lengths `minn..=maxn`, hashed into the buckets.
    fn subwords(&self, word: &str, rows: &mut Vec<u32>) {
        if self.maxn == 0 || self.bucket == 0 {
            return;
        }
        let b = word.as_bytes();
        for i in 0..b.len() {
            if b[i] & 0xC0 == 0x80 {
                continue;
            }
            let mut j = i;
            let mut n = 1;
            while j < b.len() && n <= self.maxn {
                j += 1;
                while j < b.len() && b[j] & 0xC0 == 0x80 {
                    j += 1;
                }
                if n >= self.minn && !(n == 1 && (i == 0 || j == b.len())) {
                    self.push_bucket(hash(&b[i..j]), rows);
                }
                n += 1;
            }
        }
    }

    /// The input rows of one line, as fastText's `getLine` (the line ends with `</s>`).
    fn rows(&self, text: &str) -> Vec<u32> {
        let mut rows = Vec::with_capacity(64 + 8 * text.len());
        let mut hashes = Vec::new();
        let mut bracketed = String::with_capacity(64);
        let tokens = text
            .split([' ', '\n', '\t', '\u{b}', '\u{c}', '\r', '\0'])
            .filter(|t| !t.is_empty())
            .chain(std::iter::once(EOS));
        for token in tokens {
            match self.words.get(token) {
                Some(ids) => rows.extend_from_slice(ids),
                None if token.starts_with(LABEL_PREFIX) => continue,
                None => {
                    bracketed.clear();
                    bracketed.push('<');
                    bracketed.push_str(token);
                    bracketed.push('>');
                    self.subwords(&bracketed, &mut rows);
                }
            }
            hashes.push(hash(token.as_bytes()));
        }
        if self.word_ngrams > 1 {
            for i in 0..hashes.len() {
                let mut h = hashes[i] as i32 as i64 as u64;
                for &next in hashes.iter().skip(i + 1).take(self.word_ngrams - 1) {
                    h = h
                        .wrapping_mul(116_049_371)
                        .wrapping_add(next as i32 as i64 as u64);
                    self.push_bucket((h % self.bucket as u64) as u32, &mut rows);
                }
            }
        }
        rows
    }

    fn hidden(&self, text: &str) -> Vec<f32> {
        let rows = self.rows(text);
        let mut hidden = vec![0f32; self.dim];
        for &row in &rows {
            self.input.add_row(&mut hidden, row as usize);
        }
        let scale = 1.0 / rows.len().max(1) as f32;
        hidden.iter_mut().for_each(|h| *h *= scale);
        hidden
    }

    /// The probabilities of the labels `targets` (indices into [`FastText::labels`]) and the
    /// largest probability of any other label, as [`FastText::predict`] would give them, but
    /// with a hierarchical-softmax model only the tree nodes that can matter are computed: the
    /// targets' paths, and a branch-and-bound search for the best other leaf.
    pub fn predict_some(&self, text: &str, targets: &[usize]) -> (Vec<f32>, f32) {
        if self.loss != Loss::HierarchicalSoftmax {
            let p = self.predict(text);
            let other = (0..p.len())
                .filter(|i| !targets.contains(i))
                .map(|i| p[i])
                .fold(0.0, f32::max);
            return (targets.iter().map(|&i| p[i]).collect(), other);
        }
        let hidden = self.hidden(text);
        let n = self.labels.len();
        // The sigmoid of each internal node, computed once when first needed.
        let mut sig = vec![f32::NAN; n - 1];
        let mut node_f = |node: usize| -> f32 {
            let s = &mut sig[node - n];
            if s.is_nan() {
                *s = sigmoid(self.output.dot_row(&hidden, node - n));
            }
            *s
        };
        let step = |f: f32, right: bool| {
            if right {
                (f + 1e-5).ln()
            } else {
                (1.0 - f + 1e-5).ln()
            }
        };
        let probs = targets
            .iter()
            .map(|&leaf| {
                let mut log_p = 0.0;
                let mut node = leaf;
                while let Some(&(parent, right)) = self.parents.get(node).and_then(Option::as_ref) {
                    log_p += step(node_f(parent), right);
                    node = parent;
                }
                log_p.exp()
            })
            .collect();
        // Depth first, the likelier child first; a subtree whose path is already no likelier
        // than the best other leaf found cannot hold a better one (each step multiplies by at
        // most 1 + 1e-5, hence the small margin).
        let mut best = f32::NEG_INFINITY;
        let mut stack = vec![(2 * n - 2, 0.0f32)];
        while let Some((node, log_p)) = stack.pop() {
            if log_p + 1e-3 <= best {
                continue;
            }
            if node < n {
                if !targets.contains(&node) {
                    best = best.max(log_p);
                }
                continue;
            }
            let f = node_f(node);
            let t = self.tree[node];
            let left = (t.left as usize, log_p + step(f, false));
            let right = (t.right as usize, log_p + step(f, true));
            if left.1 > right.1 {
                stack.extend([right, left]);
            } else {
                stack.extend([left, right]);
            }
        }
        (probs, if best.is_finite() { best.exp() } else { 0.0 })
    }

    /// The probability of every label for one line of `text` (newlines count as spaces), in
    /// the order of [`FastText::labels`]. Text with no tokens gets the distribution of `</s>`.
    pub fn predict(&self, text: &str) -> Vec<f32> {
        let hidden = self.hidden(text);
        let n = self.labels.len();
        match self.loss {
            Loss::HierarchicalSoftmax => {
                let mut probs = vec![0f32; n];
                self.descend(2 * n - 2, 0.0, &hidden, &mut probs);
                probs
            }
            Loss::Softmax => {
                let logits: Vec<f32> = (0..n).map(|i| self.output.dot_row(&hidden, i)).collect();
                let max = logits.iter().copied().fold(f32::MIN, f32::max);
                let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f32 = exps.iter().sum();
                exps.into_iter().map(|e| e / sum).collect()
            }
            Loss::NegativeSampling | Loss::OneVsAll => (0..n)
                .map(|i| sigmoid(self.output.dot_row(&hidden, i)))
                .collect(),
        }
    }

    fn descend(&self, node: usize, log_p: f32, hidden: &[f32], probs: &mut [f32]) {
        let n = self.labels.len();
        if node < n {
            probs[node] = log_p.exp();
            return;
        }
        let f = sigmoid(self.output.dot_row(hidden, node - n));
        let t = self.tree[node];
        self.descend(
            t.left as usize,
            log_p + (1.0 - f + 1e-5).ln(),
            hidden,
            probs,
        );
        self.descend(t.right as usize, log_p + (f + 1e-5).ln(), hidden, probs);
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// fastText's `HierarchicalSoftmaxLoss::buildTree`: a Huffman tree over the label counts
/// (sorted by count, descending), leaves first, the root last.
fn huffman(counts: &[i64]) -> Vec<Node> {
    let n = counts.len();
    let mut tree = vec![
        Node {
            left: -1,
            right: -1,
            count: 1_000_000_000_000_000,
        };
        2 * n - 1
    ];
    for (i, &c) in counts.iter().enumerate() {
        tree[i].count = c;
    }
    let mut leaf = n as i64 - 1;
    let mut node = n;
    for i in n..2 * n - 1 {
        let mut mini = [0i64; 2];
        for m in &mut mini {
            if leaf >= 0 && tree[leaf as usize].count < tree[node].count {
                *m = leaf;
                leaf -= 1;
            } else {
                *m = node as i64;
                node += 1;
            }
        }
        tree[i].left = mini[0];
        tree[i].right = mini[1];
        tree[i].count = tree[mini[0] as usize].count + tree[mini[1] as usize].count;
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_fasttext_on_non_ascii_bytes() {
        // fastText sign-extends each byte; "é" (C3 A9) must not hash like its unsigned bytes.
        let unsigned = {
            let mut h: u32 = 2_166_136_261;
            for &b in "é".as_bytes() {
                h ^= b as u32;
                h = h.wrapping_mul(16_777_619);
            }
            h
        };
        assert_ne!(hash("é".as_bytes()), unsigned);
        assert_eq!(hash(b"a"), (2_166_136_261u32 ^ 97).wrapping_mul(16_777_619));
    }

    #[test]
    fn huffman_tree_has_root_last_with_total_count() {
        let tree = huffman(&[5, 3, 2]);
        assert_eq!(tree.len(), 5);
        assert_eq!(tree[4].count, 10);
        assert_eq!(tree[3].count, 5);
    }

    #[test]
    fn a_truncated_file_is_a_clear_error() {
        let err = FastText::read(&MAGIC.to_le_bytes()[..], "lid.ftz")
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("lid.ftz: the file ends early"),
            "{err:#}"
        );
        let err = FastText::read(&[0u8; 8][..], "x.bin").err().unwrap();
        assert!(format!("{err:#}").contains("bad magic"), "{err:#}");
    }
}
