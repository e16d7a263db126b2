//! Evidence from labelled messages: a second opinion on the rules' route, learned from the desk's
//! labelled messages and nothing else.
//!
//! Keyword rules tuned on what some people wrote stop generalising to what others write: over the
//! training sets 21–29, each scored before any rule was tuned on it, the rules of the day chose the
//! labelled route for 91.8 % of the messages and a wrong route with confidence for 6.1 %. With this
//! second opinion, learned only from the sets written before each one, the same rules scored
//! 95.3 % and 2.1 % (`loket rules eval --learn`; BENCHMARKS.md, "A second opinion from labelled
//! messages").
//!
//! Used by the router when the rules directory has labelled messages (`rules/labelled/`,
//! [`super::LABELLED_DIR`]) and by `loket rules eval --learn`.
//!
//! The model never brings a route of its own: the rules score every route. [`judge`] compares its
//! scores with the rules' decision: agreement, or a disagreement where the model itself is not
//! clear, keeps the rules' route; a clear disagreement sends the message to triage for a person to
//! decide. A clear lead of the model ([`clear_best`]) for one of the rules' own candidates takes it:
//! their runner-up with at least half their threshold (unless the winner's cue is one the model
//! never had), or, where the rules left the message to triage with a candidate (their best route
//! below the threshold but at least half of it, or two routes tied), that candidate; a service
//! refused to an outside sender stays refused. Where the model is not clear, the rules (whose own
//! examples it also learns from) keep their say: over the training sets 27–31, each left out of
//! the model in turn, sending those messages to triage as well took one confidently wrong route
//! more out of 799 and two right ones (BENCHMARKS.md, "The second opinion shipped").
//!
//! The model: words of two letters or more and pairs of neighbouring words of the folded text
//! ([`super::normalize::fold`]), weighted by `1 + ln(count)` times their inverse document frequency
//! and scaled to length one; one linear support vector machine per route against the rest (L2
//! regularised, squared hinge loss, trained by dual coordinate descent as liblinear does, with a
//! fixed visiting order so that a model is the same on every machine). Pure: no I/O.

use super::HashMap;
use super::normalize::fold;

/// The regularisation constant: how much a training message may pull the weights.
const C: f64 = 0.5;
/// Dual coordinate descent stops when the projected gradients' spread falls below this, or after
/// [`MAX_ROUNDS`] passes.
const TOLERANCE: f64 = 0.1;
const MAX_ROUNDS: usize = 100;
/// A term must appear in at least this many training messages to be a feature.
const MIN_MESSAGES: u32 = 2;

/// The trainer's settings, part of a kept model's fingerprint ([`super::learned`]): a model
/// learned with other settings is learned again.
pub fn settings() -> String {
    format!("C={C} tolerance={TOLERANCE} rounds={MAX_ROUNDS} min_messages={MIN_MESSAGES}")
}

/// How far apart two routes' scores must be for the model's choice to count as clear: above it,
/// the model overrules the rules (the message goes to triage); within it of the model's best, the
/// rules' route is kept.
pub const CLEAR_MARGIN: f32 = 0.3;

/// A desk's model: its vocabulary, each term's inverse document frequency and, per term, one
/// weight per route.
#[derive(Debug, Clone)]
pub struct Model {
    /// The vocabulary (its words and its pairs of words; features are numbered in the terms'
    /// sorted order) and the terms' inverse document frequencies.
    terms: Terms,
    routes: Vec<String>,
    /// `weights[term * routes.len() + route]`, in steps of the route's `scale`: a byte a weight
    /// (a quarter of the memory a process reads back and a route's scoring touches), within half
    /// a step of the weight learned.
    weights: Weights,
    /// Per route, the weight of one step: its largest weight over 127.
    scale: Vec<f32>,
    bias: Vec<f32>,
}

/// How a model's terms are held.
#[derive(Debug, Clone)]
enum Terms {
    /// In hash tables: learned, or read back by [`Reading::Built`].
    Built { vocabulary: Vocabulary, idf: Vec<f32> },
    /// Where they lie in the kept bytes (the model's [`Weights`] hold them whole), read back by
    /// [`Reading::InPlace`].
    InPlace(Layout),
}

/// How a kept model is read back ([`Model::read`]). Both score every text alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reading {
    /// Into hash tables: the quickest look-ups, for the many messages of a daemon.
    Built,
    /// Looked up where its terms lie in its bytes, by binary search: nothing is built, for the
    /// few messages of one `loket ingest` process.
    InPlace,
}

/// The terms of a text: its words of two or more letters, then its pairs of neighbouring words.
fn terms(text: &str) -> Vec<String> {
    let folded = fold(text);
    let words: Vec<&str> = words(&folded).collect();
    let mut out: Vec<String> = words.iter().map(|w| (*w).to_string()).collect();
    out.extend(words.windows(2).map(|p| format!("{} {}", p[0], p[1])));
    out
}

/// The features of `folded` text's words and pairs, found by `word` and `pair`
/// ([`Model::features_of`]).
fn features_by(
    folded: &Folded,
    word: impl Fn(&str) -> Option<u32>,
    pair: impl Fn(u32, u32) -> Option<u32>,
) -> Vec<u32> {
    let mut found = Vec::new();
    let mut last: Option<u32> = None;
    for w in words(&folded.0) {
        let this = word(w);
        if let Some(f) = this {
            found.push(f);
            if let Some(p) = last.and_then(|prev| pair(prev, f)) {
                found.push(p);
            }
        }
        last = this;
    }
    found
}

/// The words the model reads in `folded` text ([`fold`]): those of two letters or more.
fn words(folded: &str) -> impl Iterator<Item = &str> {
    folded.split(' ').filter(|w| w.chars().nth(1).is_some())
}

/// The key of the pair of words whose features are `first` and `second`, in that order.
fn pair_key(first: u32, second: u32) -> u64 {
    (u64::from(first) << 32) | u64::from(second)
}

/// A message's text for the model: its subject and body.
pub fn text(subject: &str, body: &str) -> String {
    format!("{subject}\n{body}")
}

/// A text folded as the models read it ([`fold`]): made once where two models read one message
/// (the desk's route opinion and the impact opinion).
pub struct Folded(String);

impl Folded {
    pub fn new(text: &str) -> Self {
        Self(fold(text))
    }
}

/// A sparse row: (feature, value), features ascending, scaled to length one.
type Row = Vec<(u32, f32)>;

impl Model {
    /// Trains on `(text, route)` pairs; `None` with fewer than two routes (nothing to tell apart).
    pub fn train(examples: &[(String, String)]) -> Option<Self> {
        let mut routes: Vec<String> = examples.iter().map(|(_, r)| r.clone()).collect();
        routes.sort();
        routes.dedup();
        if routes.len() < 2 {
            return None;
        }
        let tokenised: Vec<Vec<String>> = examples.iter().map(|(t, _)| terms(t)).collect();
        // Document frequencies, then the vocabulary in sorted order (the same on every run).
        let mut df: HashMap<&str, u32> = HashMap::default();
        for ts in &tokenised {
            let mut seen: Vec<&str> = ts.iter().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                *df.entry(t).or_default() += 1;
            }
        }
        let mut kept: Vec<(&str, u32)> = df.into_iter().filter(|(_, n)| *n >= MIN_MESSAGES).collect();
        kept.sort_unstable();
        let n = examples.len() as f32;
        let idf: Vec<f32> = kept.iter().map(|(_, d)| ((1.0 + n) / (1.0 + *d as f32)).ln() + 1.0).collect();
        let vocabulary = Vocabulary::of_terms(kept.iter().map(|(t, _)| *t))
            .expect("a pair's words are in at least as many messages as the pair, and each term is counted once");
        let mut model = Model {
            terms: Terms::Built { vocabulary, idf },
            routes,
            weights: Weights::default(),
            scale: Vec::new(),
            bias: Vec::new(),
        };
        let rows: Vec<Row> =
            tokenised.iter().map(|ts| model.row(ts.iter().filter_map(|t| model.feature(t)).collect())).collect();
        let labels: Vec<usize> = examples
            .iter()
            .map(|(_, r)| model.routes.binary_search(r).expect("every route was collected above"))
            .collect();
        let (features, k) = (model.term_count(), model.routes.len());
        model.weights = Weights::zeroed(features * k);
        model.scale = vec![0.0; k];
        model.bias = vec![0.0; k];
        for route in 0..k {
            let (w, b) = train_one(&rows, &labels, route, features);
            let largest = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            for (f, v) in w.into_iter().enumerate() {
                model.weights.set(f * k + route, (v / scale).round().clamp(-127.0, 127.0) as i8);
            }
            model.scale[route] = scale as f32;
            model.bias[route] = b as f32;
        }
        Some(model)
    }

    /// The weighted row of a message's features (each once per occurrence, in any order).
    fn row(&self, mut found: Vec<u32>) -> Row {
        found.sort_unstable();
        let mut row: Row = Vec::with_capacity(found.len());
        for f in found {
            match row.last_mut() {
                Some((g, c)) if *g == f => *c += 1.0,
                _ => row.push((f, 1.0)),
            }
        }
        // The terms' form chosen once, not a feature at a time.
        match &self.terms {
            Terms::Built { idf, .. } => row.iter_mut().for_each(|(f, v)| *v = (1.0 + v.ln()) * idf[*f as usize]),
            Terms::InPlace(_) => row.iter_mut().for_each(|(f, v)| *v = (1.0 + v.ln()) * self.idf(*f)),
        }
        let norm = row.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|(_, v)| *v /= norm);
        }
        row
    }

    /// The feature of one term ([`terms`]: a word, or two words and a space between), if the
    /// model has it.
    fn feature(&self, term: &str) -> Option<u32> {
        match term.split_once(' ') {
            None => self.word(term),
            Some((a, b)) => self.pair(self.word(a)?, self.word(b)?),
        }
    }

    /// The feature of the word `w`, if the model has it.
    fn word(&self, w: &str) -> Option<u32> {
        match &self.terms {
            Terms::Built { vocabulary, .. } => vocabulary.word(w),
            Terms::InPlace(layout) => layout.word(&self.weights.bytes, w),
        }
    }

    /// The feature of the pair of the words whose features are `a` and `b`, if the model has it.
    fn pair(&self, a: u32, b: u32) -> Option<u32> {
        match &self.terms {
            Terms::Built { vocabulary, .. } => vocabulary.pair(a, b),
            Terms::InPlace(layout) => layout.pair(&self.weights.bytes, a, b),
        }
    }

    /// The inverse document frequency of feature `f`.
    fn idf(&self, f: u32) -> f32 {
        match &self.terms {
            Terms::Built { idf, .. } => idf[f as usize],
            Terms::InPlace(layout) => f32::from_le_bytes(word_at(&self.weights.bytes, layout.idf + 4 * f as usize)),
        }
    }

    /// Whether the model's terms are looked up where they lie ([`Reading::InPlace`]).
    #[cfg(test)]
    pub(crate) fn read_in_place(&self) -> bool {
        matches!(self.terms, Terms::InPlace(_))
    }

    fn term_count(&self) -> usize {
        match &self.terms {
            Terms::Built { idf, .. } => idf.len(),
            Terms::InPlace(layout) => layout.terms,
        }
    }

    /// The features of `text`: its terms ([`terms`]) found in the vocabulary, looked up without
    /// building them (a pair by its two words' features, only where both were found).
    #[cfg(test)]
    fn features(&self, text: &str) -> Vec<u32> {
        self.features_of(&Folded::new(text))
    }

    fn features_of(&self, folded: &Folded) -> Vec<u32> {
        // The terms' form chosen once, not a word at a time.
        match &self.terms {
            Terms::Built { vocabulary: v, .. } => features_by(folded, |w| v.word(w), |a, b| v.pair(a, b)),
            Terms::InPlace(l) => {
                let bytes = &self.weights.bytes;
                features_by(folded, |w| l.word(bytes, w), |a, b| l.pair(bytes, a, b))
            }
        }
    }

    /// Every route's score for `text`, in the order of [`Model::routes`].
    pub fn scores(&self, text: &str) -> Vec<f32> {
        self.scores_of(&Folded::new(text))
    }

    /// [`Model::scores`] of a text folded once for every model that reads it.
    pub fn scores_of(&self, folded: &Folded) -> Vec<f32> {
        let k = self.routes.len();
        let mut sums = vec![0.0f32; k];
        for (f, v) in self.row(self.features_of(folded)) {
            let w = &self.weights.bytes()[f as usize * k..(f as usize + 1) * k];
            sums.iter_mut().zip(w).for_each(|(s, w)| *s += v * f32::from(i8::from_le_bytes([*w])));
        }
        sums.iter().zip(&self.scale).zip(&self.bias).map(|((s, scale), b)| b + s * scale).collect()
    }

    /// Whether every word of `phrase` (of two letters or more, folded as the model reads a
    /// message) is one the model learned: a rules cue of a word it never saw is something the
    /// rules know and it does not.
    pub fn knows(&self, phrase: &str) -> bool {
        words(&fold(phrase)).all(|w| self.word(w).is_some())
    }

    /// The routes the model knows (`category/subcategory`), sorted.
    pub fn routes(&self) -> &[String] {
        &self.routes
    }

    /// The model as bytes, for keeping it between processes ([`Model::read`]): [`MAGIC`], the
    /// CRC-32 of what follows it, the routes, the number of terms, the words (a table of where
    /// each one's spelling lies in the spellings that follow it, its length and its feature, in
    /// the spellings' order), the pairs (a table of their two words' features and their own, in
    /// the order of those two), then the inverse document frequencies, the steps and the biases
    /// as `f32`, and the weights as bytes; counts, lengths and features as `u32`, little-endian.
    /// Nothing in it must be built to be looked up ([`Reading::InPlace`]), and nothing read back
    /// builds a string a word.
    pub fn to_bytes(&self) -> Vec<u8> {
        let vocabulary = match &self.terms {
            Terms::Built { vocabulary, .. } => vocabulary,
            // Read where it lies: the bytes it was read from, which only `to_bytes` writes.
            Terms::InPlace(_) => return self.weights.bytes.clone(),
        };
        let n = self.term_count();
        let mut words: Vec<(&str, u32)> =
            (0..n as u32).map(|f| (vocabulary.spelling_of(f), f)).filter(|(w, _)| !w.is_empty()).collect();
        words.sort_unstable();
        let mut pairs: Vec<(u32, u32, u32)> =
            vocabulary.pairs.iter().map(|(&key, &f)| ((key >> 32) as u32, key as u32, f)).collect();
        pairs.sort_unstable();
        let spelling: usize = words.iter().map(|(w, _)| w.len()).sum();
        let mut out = Vec::with_capacity(
            MAGIC.len()
                + 16
                + self.routes.iter().map(|r| 4 + r.len()).sum::<usize>()
                + 12 * n
                + spelling
                + 4 * (n + self.scale.len() + self.bias.len())
                + self.weights.bytes().len(),
        );
        let u32 = |out: &mut Vec<u8>, x: usize| out.extend_from_slice(&(x as u32).to_le_bytes());
        out.extend_from_slice(MAGIC);
        u32(&mut out, 0);
        u32(&mut out, self.routes.len());
        for r in &self.routes {
            u32(&mut out, r.len());
            out.extend_from_slice(r.as_bytes());
        }
        u32(&mut out, n);
        u32(&mut out, words.len());
        let mut at = 0;
        for (w, f) in &words {
            u32(&mut out, at);
            u32(&mut out, w.len());
            u32(&mut out, *f as usize);
            at += w.len();
        }
        u32(&mut out, spelling);
        for (w, _) in &words {
            out.extend_from_slice(w.as_bytes());
        }
        u32(&mut out, pairs.len());
        for (a, b, f) in pairs {
            for x in [a, b, f] {
                u32(&mut out, x as usize);
            }
        }
        for f in 0..n as u32 {
            out.extend_from_slice(&self.idf(f).to_le_bytes());
        }
        for x in self.scale.iter().chain(&self.bias) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(self.weights.bytes());
        let sum = crc32fast::hash(&out[SUMMED..]);
        out[MAGIC.len()..SUMMED].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads what [`Model::to_bytes`] wrote, built ([`Reading::Built`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        Self::read(bytes.to_vec(), Reading::Built)
    }

    /// Reads what [`Model::to_bytes`] wrote (a file's bytes, which the model keeps: its weights,
    /// most of the file, are read where they lie, and with [`Reading::InPlace`] its terms too).
    /// Anything else is an error, not a model: another format's version, bytes that do not match
    /// their checksum, a file cut short or with bytes left over, routes out of order; and where
    /// the model is built, a term twice or missing, words out of order, a pair of features that
    /// are not both words. Read in place, the terms are not gone through (that would cost what
    /// building them costs): the checksum finds damage, and a look-up in bytes that match it but
    /// were not written by [`Model::to_bytes`] finds a wrong term or none, never one beyond the
    /// model.
    pub fn read(bytes: Vec<u8>, reading: Reading) -> Result<Self, String> {
        let mut r = Reader { bytes: &bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a second opinion's model of this version".into());
        }
        let sum = r.take(4)?;
        if sum != crc32fast::hash(&bytes[SUMMED..]).to_le_bytes() {
            return Err("damaged: the model does not match its checksum".into());
        }
        let routes: Vec<String> = r.strings()?.into_iter().map(str::to_string).collect();
        if routes.len() < 2 || routes.windows(2).any(|p| p[0] >= p[1]) {
            return Err("its routes are not two or more, sorted and distinct".into());
        }
        let layout = Layout::read(&mut r)?;
        let k = routes.len();
        let scale = r.floats(k)?;
        let bias = r.floats(k)?;
        let at = r.at;
        if r.take(layout.terms.checked_mul(k).ok_or("too many weights")?)?.contains(&i8::MIN.to_le_bytes()[0]) {
            return Err("a weight out of range".into());
        }
        if r.at != bytes.len() {
            return Err(format!("{} bytes after the model", bytes.len() - r.at));
        }
        let terms = match reading {
            Reading::InPlace => Terms::InPlace(layout),
            Reading::Built => {
                let idf = Reader { bytes: &bytes, at: layout.idf }.floats(layout.terms)?;
                Terms::Built { vocabulary: layout.vocabulary(&bytes)?, idf }
            }
        };
        Ok(Model { terms, routes, weights: Weights { bytes, at }, scale, bias })
    }
}

/// Where a kept model's checksummed bytes start: after [`MAGIC`] and the CRC-32.
const SUMMED: usize = MAGIC.len() + 4;

/// Four bytes of `bytes` at `at` (a place [`Layout::read`] found within them).
fn word_at(bytes: &[u8], at: usize) -> [u8; 4] {
    [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(word_at(bytes, at))
}

/// Where a kept model's terms lie in its bytes ([`Model::to_bytes`]): the sections' offsets, each
/// within the bytes, so that a look-up reads them without building anything. What the sections
/// hold is gone through only where the model is built ([`Layout::vocabulary`]).
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// The number of terms (features).
    terms: usize,
    /// The words' table: (where the spelling lies in `spelling`, its length, the feature), 12
    /// bytes each, in the spellings' order.
    words: usize,
    word_count: usize,
    spelling: usize,
    spelling_len: usize,
    /// The pairs' table: (first word's feature, second word's feature, the pair's feature), 12
    /// bytes each, in the order of the two words' features.
    pairs: usize,
    pair_count: usize,
    /// The inverse document frequencies, an `f32` a term.
    idf: usize,
}

impl Layout {
    /// The terms' sections from the number of terms on; `r` is left after the frequencies.
    fn read(r: &mut Reader<'_>) -> Result<Self, String> {
        let terms = r.u32()?;
        let word_count = r.u32()?;
        let words = r.at;
        r.take(word_count.checked_mul(12).ok_or("cut short")?)?;
        let spelling_len = r.u32()?;
        let spelling = r.at;
        r.take(spelling_len)?;
        let pair_count = r.u32()?;
        let pairs = r.at;
        r.take(pair_count.checked_mul(12).ok_or("cut short")?)?;
        let idf = r.at;
        r.take(terms.checked_mul(4).ok_or("cut short")?)?;
        if word_count.checked_add(pair_count) != Some(terms) {
            return Err("its terms are not its words and its pairs".into());
        }
        Ok(Self { terms, words, word_count, spelling, spelling_len, pairs, pair_count, idf })
    }

    fn spelling<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[self.spelling..self.spelling + self.spelling_len]
    }

    /// The `i`th word: its spelling and its feature; `None` for a spelling not within the
    /// spellings (not in bytes [`Model::to_bytes`] wrote).
    fn word_entry<'b>(&self, bytes: &'b [u8], i: usize) -> Option<(&'b [u8], u32)> {
        let e = self.words + 12 * i;
        let (at, len) = (u32_at(bytes, e) as usize, u32_at(bytes, e + 4) as usize);
        Some((self.spelling(bytes).get(at..at.checked_add(len)?)?, u32_at(bytes, e + 8)))
    }

    /// The `i`th pair: its two words' features and its own.
    fn pair_entry(&self, bytes: &[u8], i: usize) -> (u32, u32, u32) {
        let e = self.pairs + 12 * i;
        (u32_at(bytes, e), u32_at(bytes, e + 4), u32_at(bytes, e + 8))
    }

    /// The feature of the word `w` (one of the model's features, whatever the bytes hold).
    fn word(&self, bytes: &[u8], w: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.word_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (spelling, f) = self.word_entry(bytes, mid)?;
            match spelling.cmp(w.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return (f < self.terms as u32).then_some(f),
            }
        }
        None
    }

    /// The feature of the pair of the words `a` and `b` (one of the model's features, whatever
    /// the bytes hold).
    fn pair(&self, bytes: &[u8], a: u32, b: u32) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.pair_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (x, y, f) = self.pair_entry(bytes, mid);
            match (x, y).cmp(&(a, b)) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return (f < self.terms as u32).then_some(f),
            }
        }
        None
    }

    /// The terms in hash tables ([`Reading::Built`]), each table gone through as it is built:
    /// that every word lies within the spellings, is UTF-8 of one word and comes after the one
    /// before, that every pair's two features are words and come after the pair before, and that
    /// every feature is one term's, once.
    fn vocabulary(&self, bytes: &[u8]) -> Result<Vocabulary, String> {
        let spelling = std::str::from_utf8(self.spelling(bytes)).map_err(|_| "a word that is not UTF-8".to_string())?;
        if spelling.contains(' ') {
            return Err("a word of more than one word".into());
        }
        let mut v = Vocabulary::with_capacity(self.terms, self.spelling_len);
        let mut seen = vec![false; self.terms];
        let mut is_word = vec![false; self.terms];
        let mut last: Option<&str> = None;
        for i in 0..self.word_count {
            let e = self.words + 12 * i;
            let (at, len, f) =
                (u32_at(bytes, e) as usize, u32_at(bytes, e + 4) as usize, u32_at(bytes, e + 8) as usize);
            let word = at
                .checked_add(len)
                .filter(|_| len > 0)
                .and_then(|end| spelling.get(at..end))
                .ok_or("a word that is empty or not within the spellings")?;
            if last.is_some_and(|l| l >= word) {
                return Err("words out of order or listed twice".into());
            }
            last = Some(word);
            if f >= self.terms || std::mem::replace(&mut seen[f], true) || !v.add_word(f as u32, word) {
                return Err("a term is listed twice".into());
            }
            is_word[f] = true;
        }
        v.shrink_to_fit();
        v.pairs.reserve(self.pair_count);
        let mut last = None;
        for i in 0..self.pair_count {
            let (a, b, f) = self.pair_entry(bytes, i);
            let (x, y, g) = (a as usize, b as usize, f as usize);
            if !(x < self.terms && y < self.terms && is_word[x] && is_word[y]) {
                return Err("a pair of words that are not both terms".into());
            }
            if last.is_some_and(|l| l >= (a, b)) {
                return Err("pairs out of order or listed twice".into());
            }
            last = Some((a, b));
            if g >= self.terms || std::mem::replace(&mut seen[g], true) || !v.add_pair(f, a, b)? {
                return Err("a term is listed twice".into());
            }
        }
        Ok(v)
    }
}

/// A model's weights, a byte each (an `i8`'s), where they lie in `bytes`: a model read back keeps
/// its file's bytes and reads the weights (most of them) in place, a learned model its own.
#[derive(Debug, Clone, Default, PartialEq)]
struct Weights {
    bytes: Vec<u8>,
    at: usize,
}

impl Weights {
    fn zeroed(len: usize) -> Self {
        Self { bytes: vec![0; len], at: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[self.at..]
    }

    fn set(&mut self, i: usize, w: i8) {
        self.bytes[self.at + i] = w.to_le_bytes()[0];
    }
}

/// The spelling of `len` bytes at `at` in a vocabulary's `spelling` (where its words were put).
fn span(spelling: &str, at: u32, len: u32) -> &str {
    &spelling[at as usize..(at + len) as usize]
}

/// A model's terms: its words, found by their spelling, and its pairs of neighbouring words, by
/// their two words' features ([`pair_key`]). Both words of a pair are always words of the
/// vocabulary (a pair in two messages has each of its words in them), so a message's pair is
/// looked up only where both its words were found, as two numbers rather than as a string built
/// and hashed. The words' spellings are one string, so that a model read back allocates no string
/// a word.
#[derive(Debug, Clone, Default)]
struct Vocabulary {
    /// Every word's spelling, one after another.
    spelling: String,
    /// Per feature, where its word's spelling lies in `spelling` (a pair's is empty).
    spans: Vec<(u32, u32)>,
    /// The words, found by their spelling's hash: where the spelling lies in `spelling` and the
    /// word's feature (a message's look-up compares the spelling without going through `spans`).
    words: hashbrown::HashTable<(u32, u32, u32)>,
    pairs: HashMap<u64, u32>,
}

impl Vocabulary {
    fn with_capacity(terms: usize, spelling: usize) -> Self {
        Self {
            spelling: String::with_capacity(spelling),
            spans: Vec::with_capacity(terms),
            words: hashbrown::HashTable::with_capacity(terms),
            pairs: HashMap::default(),
        }
    }

    fn shrink_to_fit(&mut self) {
        self.spelling.shrink_to_fit();
        self.spans.shrink_to_fit();
        let Self { spelling, words, .. } = self;
        words.shrink_to_fit(|&(at, len, _)| Self::hash(span(spelling, at, len)));
    }

    /// The words and the pairs of `terms`, given in feature order; an error for a term listed
    /// twice, a term of more than two words, or a pair one of whose words is not a term.
    fn of_terms<'t>(terms: impl Iterator<Item = &'t str> + Clone) -> Result<Self, String> {
        let mut v = Self::with_capacity(terms.clone().count(), terms.clone().map(str::len).sum());
        for (f, t) in terms.clone().enumerate().filter(|(_, t)| !t.contains(' ')) {
            if !v.add_word(f as u32, t) {
                return Err("a term is listed twice".into());
            }
        }
        for (f, (a, b)) in terms.enumerate().filter_map(|(f, t)| t.split_once(' ').map(|p| (f, p))) {
            let (Some(a), Some(b)) = (v.word(a), v.word(b)) else {
                return Err("a pair of words that are not both terms".into());
            };
            if !v.add_pair(f as u32, a, b)? {
                return Err("a term is listed twice".into());
            }
        }
        Ok(v)
    }

    fn hash(word: &str) -> u64 {
        use std::hash::BuildHasher;
        rustc_hash::FxBuildHasher.hash_one(word)
    }

    fn spelling_of(&self, f: u32) -> &str {
        let (at, len) = self.spans.get(f as usize).copied().unwrap_or((0, 0));
        span(&self.spelling, at, len)
    }

    /// The feature `f` of the word `w`; false where `w` is a word already.
    fn add_word(&mut self, f: u32, w: &str) -> bool {
        let hash = Self::hash(w);
        if self.word_hashed(w, hash).is_some() {
            return false;
        }
        if self.spans.len() <= f as usize {
            self.spans.resize(f as usize + 1, (0, 0));
        }
        let (at, len) = (self.spelling.len() as u32, w.len() as u32);
        self.spans[f as usize] = (at, len);
        self.spelling.push_str(w);
        let Self { spelling, words, .. } = self;
        words.insert_unique(hash, (at, len, f), |&(at, len, _)| Self::hash(span(spelling, at, len)));
        true
    }

    /// The feature `f` of the pair of the words whose features are `a` and `b`; false where that
    /// pair is a term already, an error where `a` or `b` is no word.
    fn add_pair(&mut self, f: u32, a: u32, b: u32) -> Result<bool, String> {
        let is_word = |x: u32| self.spans.get(x as usize).is_some_and(|&(_, len)| len > 0);
        if !is_word(a) || !is_word(b) {
            return Err("a pair of words that are not both terms".into());
        }
        Ok(self.pairs.insert(pair_key(a, b), f).is_none())
    }

    fn word(&self, w: &str) -> Option<u32> {
        self.word_hashed(w, Self::hash(w))
    }

    fn word_hashed(&self, w: &str, hash: u64) -> Option<u32> {
        let spelling = self.spelling.as_bytes();
        self.words
            .find(hash, |&(at, len, _)| {
                len as usize == w.len() && spelling.get(at as usize..(at + len) as usize) == Some(w.as_bytes())
            })
            .map(|&(_, _, f)| f)
    }

    fn pair(&self, a: u32, b: u32) -> Option<u32> {
        self.pairs.get(&pair_key(a, b)).copied()
    }

    /// Every term, in feature order.
    #[cfg(test)]
    fn terms(&self) -> Vec<String> {
        let mut terms: Vec<String> = (0..self.spans.len() as u32).map(|f| self.spelling_of(f).to_string()).collect();
        for (&key, &f) in &self.pairs {
            if terms.len() <= f as usize {
                terms.resize(f as usize + 1, String::new());
            }
            terms[f as usize] = format!("{} {}", self.spelling_of((key >> 32) as u32), self.spelling_of(key as u32));
        }
        terms
    }
}

/// The first bytes of a model kept as bytes ([`Model::to_bytes`]); the last is the format's
/// version.
pub const MAGIC: &[u8; 8] = b"LOKETSV\x04";

/// Reads a model's bytes front to back, checking every length against what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or("cut short")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn strings(&mut self) -> Result<Vec<&'a str>, String> {
        let n = self.u32()?;
        // Each string takes at least its length's four bytes: a count past that is a bad file.
        if n > (self.bytes.len() - self.at) / 4 {
            return Err("cut short".into());
        }
        (0..n)
            .map(|_| {
                let len = self.u32()?;
                let s = self.take(len)?;
                std::str::from_utf8(s).map_err(|_| "a string that is not UTF-8".to_string())
            })
            .collect()
    }

    fn floats(&mut self, n: usize) -> Result<Vec<f32>, String> {
        let b = self.take(n.checked_mul(4).ok_or("cut short")?)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

/// One route against the rest: L2-regularised squared-hinge SVM by dual coordinate descent
/// (Hsieh et al., 2008; liblinear's default solver), the bias as a feature of value one.
fn train_one(rows: &[Row], labels: &[usize], route: usize, features: usize) -> (Vec<f64>, f64) {
    let diag = 0.5 / C;
    let y: Vec<f64> = labels.iter().map(|&l| if l == route { 1.0 } else { -1.0 }).collect();
    let qii: Vec<f64> =
        rows.iter().map(|r| r.iter().map(|(_, v)| (*v as f64).powi(2)).sum::<f64>() + 1.0 + diag).collect();
    let mut alpha = vec![0.0f64; rows.len()];
    let mut w = vec![0.0f64; features];
    let mut b = 0.0f64;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    // A fixed pseudo-random visiting order (xorshift), the same on every machine.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..MAX_ROUNDS {
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (mut max_pg, mut min_pg) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let row = &rows[i];
            let wx = row.iter().map(|(f, v)| w[*f as usize] * *v as f64).sum::<f64>() + b;
            let g = y[i] * wx - 1.0 + diag * alpha[i];
            let pg = if alpha[i] == 0.0 { g.min(0.0) } else { g };
            max_pg = max_pg.max(pg);
            min_pg = min_pg.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (alpha[i] - g / qii[i]).max(0.0);
                let d = (alpha[i] - old) * y[i];
                for (f, v) in row {
                    w[*f as usize] += d * *v as f64;
                }
                b += d;
            }
        }
        if max_pg - min_pg < TOLERANCE {
            break;
        }
    }
    (w, b)
}

/// What the model makes of the rules' route for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// The model's best route is the rules' route, or the rules sent the message to triage, or
    /// the model does not know the rules' route's desk.
    Agrees,
    /// The rules' route is within [`CLEAR_MARGIN`] of the model's best: kept.
    Close { best: String, gap: f32 },
    /// The model's best route leads its runner-up by more than [`CLEAR_MARGIN`] and is not the
    /// rules': the rules' route is held for a person (triage).
    Overrules { best: String, margin: f32 },
    /// Neither clear: the model's best leads by little and the rules' route is not close to it.
    /// Kept: the model does not know this message well enough to hold the rules' route back.
    Unclear { best: String, margin: f32, gap: f32 },
}

/// Judges the rules' route (`category/subcategory`; `triage` when the rules sent the message to
/// triage) by the model's `scores` (from [`Model::scores`]).
pub fn judge(model: &Model, scores: &[f32], rules_route: &str, rules_triage: bool) -> Judgement {
    let (first, second) = best_two(scores);
    let best = &model.routes[first];
    if rules_triage || best == rules_route {
        return Judgement::Agrees;
    }
    let margin = scores[first] - scores[second];
    if margin > CLEAR_MARGIN {
        return Judgement::Overrules { best: best.clone(), margin };
    }
    let gap = match model.routes.binary_search_by(|r| r.as_str().cmp(rules_route)) {
        Ok(i) => scores[first] - scores[i],
        Err(_) => f32::INFINITY,
    };
    if gap < CLEAR_MARGIN {
        Judgement::Close { best: best.clone(), gap }
    } else {
        Judgement::Unclear { best: best.clone(), margin, gap }
    }
}

/// The best score's index and the runner-up's (the first of equals), in one pass; a model has
/// two routes or more.
fn best_two(scores: &[f32]) -> (usize, usize) {
    let (mut first, mut second) = (0, 1);
    if scores[1] > scores[0] {
        (first, second) = (1, 0);
    }
    for (i, s) in scores.iter().enumerate().skip(2) {
        if *s > scores[first] {
            (first, second) = (i, first);
        } else if *s > scores[second] {
            second = i;
        }
    }
    (first, second)
}

/// The model's best route for `scores` and its lead over the runner-up, when the lead is clear
/// (above [`CLEAR_MARGIN`]).
pub fn clear_best<'m>(model: &'m Model, scores: &[f32]) -> Option<(&'m str, f32)> {
    let (first, second) = best_two(scores);
    let margin = scores[first] - scores[second];
    (margin > CLEAR_MARGIN).then(|| (model.routes[first].as_str(), margin))
}

/// The impact opinion as a desk's rules hold it: a model at hand, or one read back (or learned)
/// when an incident first needs it — `loket ingest` routes one message, and most are no
/// incident.
pub struct ImpactOpinion {
    model: std::sync::OnceLock<Option<std::sync::Arc<Model>>>,
    load: Option<Box<dyn Fn() -> Option<std::sync::Arc<Model>> + Send + Sync>>,
}

/// None at hand: the scope classes alone give an incident's impact.
impl Default for ImpactOpinion {
    fn default() -> Self {
        Self::ready(None)
    }
}

impl ImpactOpinion {
    /// An opinion at hand (or none).
    pub fn ready(model: Option<std::sync::Arc<Model>>) -> Self {
        Self { model: std::sync::OnceLock::from(model), load: None }
    }

    /// An opinion `load` gives when first asked for.
    pub fn deferred(load: impl Fn() -> Option<std::sync::Arc<Model>> + Send + Sync + 'static) -> Self {
        Self { model: std::sync::OnceLock::new(), load: Some(Box::new(load)) }
    }

    /// The model, loaded now if it was deferred.
    pub fn model(&self) -> Option<&Model> {
        self.model.get_or_init(|| self.load.as_ref().and_then(|load| load())).as_deref()
    }

    /// Whether the model was asked for (or was at hand from the start).
    pub fn loaded(&self) -> bool {
        self.model.get().is_some()
    }
}

impl std::fmt::Debug for ImpactOpinion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImpactOpinion").field("loaded", &self.loaded()).finish_non_exhaustive()
    }
}

/// How far the impact opinion's best level must lead the next for it to give an incident's
/// impact in place of the rules' scope classes ([`impact_verdict`]).
pub const IMPACT_MARGIN: f32 = 0.3;

/// The impact opinion's level for an incident's `text` (a model learned from labelled incidents,
/// its labels the impacts: `low`, `medium`, `high`) and its lead over the next, where it leads
/// by more than [`IMPACT_MARGIN`].
pub fn impact_verdict(model: &Model, text: &Folded) -> Option<(crate::domain::Impact, f32)> {
    let scores = model.scores_of(text);
    let (first, second) = best_two(&scores);
    let margin = scores[first] - scores[second];
    let impact = crate::domain::Impact::parse(&model.routes[first])?;
    (margin > IMPACT_MARGIN).then_some((impact, margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (route, texts) in [
            ("akun/password", ["lupa password email", "reset password akun saya", "password email terkunci"]),
            (
                "jaringan/wifi",
                ["wifi lantai 3 mati", "tidak bisa konek wifi kantor", "sinyal wifi lemah di ruang rapat"],
            ),
            (
                "aplikasi/sigi",
                ["aplikasi sigi error saat login", "sigi tidak bisa dibuka", "laporan sigi gagal diunggah"],
            ),
        ] {
            for t in texts {
                out.push((t.to_string(), route.to_string()));
            }
        }
        out
    }

    #[test]
    fn terms_are_words_of_two_letters_and_their_pairs() {
        assert_eq!(terms("Wi-Fi di R. 3 mati"), ["wi", "fi", "di", "mati", "wi fi", "fi di", "di mati"]);
    }

    #[test]
    fn a_model_prefers_the_route_whose_words_a_message_shares() {
        let m = Model::train(&examples()).expect("three routes");
        assert_eq!(m.routes(), ["akun/password", "aplikasi/sigi", "jaringan/wifi"]);
        for (text, route) in [("password saya lupa", 0), ("wifi kantor mati lagi", 2), ("sigi error", 1)] {
            let s = m.scores(text);
            let best = (0..3).max_by(|a, b| s[*a].total_cmp(&s[*b])).unwrap();
            assert_eq!(best, route, "{text}: {s:?}");
        }
    }

    #[test]
    fn a_message_is_read_as_training_read_it() {
        let m = Model::train(&examples()).unwrap();
        for text in ["Password email saya lupa, wifi juga mati", "SIGI: error di R. 3 (wifi?)", "", "a b c"] {
            let by_terms: Vec<u32> = terms(text).iter().filter_map(|t| m.feature(t)).collect();
            assert_eq!(m.row(m.features(text)), m.row(by_terms), "{text}");
        }
        assert!(!m.features("lupa password email").is_empty());
    }

    #[test]
    fn training_is_the_same_every_time() {
        let a = Model::train(&examples()).unwrap();
        let b = Model::train(&examples()).unwrap();
        assert_eq!((a.weights.bytes(), a.scale), (b.weights.bytes(), b.scale));
        assert_eq!(a.bias, b.bias);
    }

    /// Every term of `m` by feature, as text.
    fn terms_of(m: &Model) -> Vec<String> {
        match &m.terms {
            Terms::Built { vocabulary, .. } => vocabulary.terms(),
            Terms::InPlace(l) => {
                let bytes = &m.weights.bytes;
                let mut terms = vec![String::new(); l.terms];
                for i in 0..l.word_count {
                    let (w, f) = l.word_entry(bytes, i).unwrap();
                    terms[f as usize] = String::from_utf8(w.to_vec()).unwrap();
                }
                for i in 0..l.pair_count {
                    let (a, b, f) = l.pair_entry(bytes, i);
                    terms[f as usize] = format!("{} {}", terms[a as usize], terms[b as usize]);
                }
                terms
            }
        }
    }

    const READINGS: [Reading; 2] = [Reading::Built, Reading::InPlace];

    /// `bytes` with their checksum set right: damage as a writer other than
    /// [`Model::to_bytes`] would do it.
    fn summed(mut bytes: Vec<u8>) -> Vec<u8> {
        let sum = crc32fast::hash(&bytes[SUMMED..]);
        bytes[MAGIC.len()..SUMMED].copy_from_slice(&sum.to_le_bytes());
        bytes
    }

    #[test]
    fn a_model_kept_as_bytes_scores_as_it_did_either_way_it_is_read_and_a_damaged_one_is_refused() {
        let m = Model::train(&examples()).unwrap();
        let bytes = m.to_bytes();
        for reading in READINGS {
            let back = Model::read(bytes.clone(), reading).unwrap();
            assert_eq!(back.routes, m.routes);
            assert_eq!(terms_of(&back), terms_of(&m), "{reading:?}");
            assert_eq!(terms_of(&m).len(), m.term_count());
            let idf = |m: &Model| (0..m.term_count() as u32).map(|f| m.idf(f)).collect::<Vec<_>>();
            assert_eq!(
                (idf(&back), back.scale.clone(), back.bias.clone(), back.weights.bytes()),
                (idf(&m), m.scale.clone(), m.bias.clone(), m.weights.bytes())
            );
            for text in ["password saya lupa", "wifi kantor mati lagi", "sigi error", "", "lupa password email"] {
                assert_eq!(back.scores(text), m.scores(text), "{reading:?} {text}");
                assert_eq!(back.features(text), m.features(text), "{reading:?} {text}");
            }
            for phrase in ["wifi", "wifi kantor", "zzz", "password lupa"] {
                assert_eq!(back.knows(phrase), m.knows(phrase), "{reading:?} {phrase}");
            }
            assert_eq!(back.to_bytes(), bytes, "{reading:?}");
            // Every cut, a byte more, another version, a count that promises more than the file has.
            let refused = |b: &[u8]| Model::read(b.to_vec(), reading).is_err();
            for n in 0..bytes.len() {
                assert!(refused(&bytes[..n]), "cut at {n}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(refused(&longer));
            let mut other = bytes.clone();
            other[7] = 3;
            assert!(refused(&other));
            // Any byte changed: the checksum tells (so does the structure, where the sum is right).
            for at in [SUMMED - 1, SUMMED + 1, bytes.len() / 2, bytes.len() - 1] {
                let mut flipped = bytes.clone();
                flipped[at] ^= 0x20;
                assert!(refused(&flipped), "{at}");
            }
            let mut out_of_range = bytes.clone();
            *out_of_range.last_mut().unwrap() = 0x80;
            assert!(refused(&summed(out_of_range)));
            let mut huge = bytes.clone();
            huge[SUMMED..SUMMED + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(refused(&summed(huge)));
        }
    }

    #[test]
    fn a_vocabulary_read_back_has_each_term_once_and_a_pairs_words_among_its_words() {
        let v = Vocabulary::of_terms(["ab", "ab cd", "cd"].into_iter()).unwrap();
        assert_eq!((v.word("ab"), v.word("cd"), v.word("ef")), (Some(0), Some(2), None));
        assert_eq!((v.pair(0, 2), v.pair(2, 0)), (Some(1), None));
        assert_eq!(v.terms(), ["ab", "ab cd", "cd"]);
        assert!(Vocabulary::of_terms(["ab cd", "cd"].into_iter()).is_err());
        assert!(Vocabulary::of_terms(["ab", "ab cd ef", "cd"].into_iter()).is_err());
        assert!(Vocabulary::of_terms(["ab", "ab"].into_iter()).is_err());
        assert!(Vocabulary::of_terms(["ab", "ab ab", "ab ab"].into_iter()).is_err());
        // Kept as bytes, each damage refused whichever way the model is read back.
        let m = Model::train(&examples()).unwrap();
        let bytes = m.to_bytes();
        let mut r = Reader { bytes: &bytes, at: SUMMED };
        r.strings().unwrap();
        let l = Layout::read(&mut r).unwrap();
        assert!(l.word_count >= 2 && l.pair_count >= 2, "{l:?}");
        let set = |b: &mut Vec<u8>, at: usize, x: u32| b[at..at + 4].copy_from_slice(&x.to_le_bytes());
        let (w, p) = (l.words, l.pairs);
        let first_pair_feature = u32_at(&bytes, p + 8);
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let damaged: [(&str, Damage); 9] = [
            // A pair whose first word is a pair.
            ("a pair of words that are not both terms", Box::new(move |b| set(b, p, first_pair_feature))),
            ("a pair of words that are not both terms", Box::new(move |b| set(b, p + 4, u32::MAX))),
            // The first two pairs the other way round; the second pair the same as the first.
            ("pairs out of order or listed twice", Box::new(move |b| b[p..p + 24].rotate_left(12))),
            ("pairs out of order or listed twice", Box::new(move |b| b.copy_within(p..p + 8, p + 12))),
            // An empty word, a word beyond the spellings, two words the other way round.
            ("a word that is empty or not within the spellings", Box::new(move |b| set(b, w + 4, 0))),
            ("a word that is empty or not within the spellings", Box::new(move |b| set(b, w, u32::MAX - 1))),
            ("words out of order or listed twice", Box::new(move |b| b[w..w + 24].rotate_left(12))),
            // Two words with one feature; a word's feature beyond the terms.
            ("a term is listed twice", Box::new(move |b| b.copy_within(w + 8..w + 12, w + 20))),
            ("a term is listed twice", Box::new(move |b| set(b, w + 8, u32::MAX))),
        ];
        // A word of two words, a word that is not UTF-8.
        let spelling = l.spelling;
        let respelled = |byte: u8| -> Damage { Box::new(move |b: &mut Vec<u8>| b[spelling] = byte) };
        let damaged = damaged
            .into_iter()
            .chain([("a word of more than one word", respelled(b' ')), ("a word that is not UTF-8", respelled(0xff))]);
        for (error, damage) in damaged {
            let mut b = bytes.clone();
            damage(&mut b);
            assert!(Model::read(b.clone(), Reading::InPlace).unwrap_err().starts_with("damaged"), "{error}");
            let b = summed(b);
            assert_eq!(Model::read(b.clone(), Reading::Built).unwrap_err(), error);
            // Read in place, such bytes are not gone through: they score, and find only the
            // model's own features.
            let m = Model::read(b, Reading::InPlace).expect("read in place");
            for text in ["password saya lupa", "wifi kantor mati lagi", "sigi error", "ab cd"] {
                assert_eq!(m.scores(text).len(), 3, "{error}");
                assert!(m.features(text).iter().all(|&f| (f as usize) < m.term_count()), "{error}");
            }
        }
    }

    #[test]
    fn one_route_is_nothing_to_learn() {
        assert!(Model::train(&[("a b".into(), "x/y".into()), ("c d".into(), "x/y".into())]).is_none());
    }

    #[test]
    fn the_rules_are_kept_when_close_overruled_when_clearly_wrong_and_triage_otherwise() {
        let m = Model::train(&examples()).unwrap();
        let routes = m.routes().to_vec();
        let at = |scores: [f32; 3], rules: &str| judge(&m, &scores, rules, false);
        assert_eq!(at([1.0, -1.0, -1.0], "akun/password"), Judgement::Agrees);
        assert_eq!(judge(&m, &[1.0, -1.0, -1.0], "triage/triage", true), Judgement::Agrees);
        assert!(
            matches!(at([1.0, -1.0, -1.0], "jaringan/wifi"), Judgement::Overrules { best, .. } if best == routes[0])
        );
        assert!(matches!(at([0.5, 0.4, 0.35], "jaringan/wifi"), Judgement::Close { best, .. } if best == routes[0]));
        assert!(matches!(at([0.5, 0.4, -0.5], "jaringan/wifi"), Judgement::Unclear { best, .. } if best == routes[0]));
        // A route the model never saw is not close to anything.
        assert!(matches!(at([0.5, 0.4, -0.5], "lain/lain"), Judgement::Unclear { .. }));
    }
}
