//! Cuts the XMPP byte stream into frames: the stream's opening tag, its closing
//! tag, and whole top-level stanzas. Between frames it skips whitespace, the U+0200
//! keepalive (`C8 80`), XML declarations (a control node may send
//! `<?xml version="1.0"?>` before any stanza) and comments. It buffers at most
//! `max_stanza` bytes of a stanza in progress: an endless stanza is an error, not
//! unbounded memory. Incomplete input waits for more bytes; scanning resumes where
//! it stopped, so a stanza arriving a byte at a time costs what it costs at once.

/// One piece of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `<stream:stream ...>`: the peer opened its stream (the tag's text).
    StreamOpen(String),
    /// `</stream:stream>`: the peer closed its stream.
    StreamClose,
    /// A complete top-level element (`<iq>`, `<message>`, `<stream:features>`, ...).
    Stanza(String),
}

/// Why the stream cannot be framed; the channel is closed and reopened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A stanza grew beyond the limit.
    #[error("stanza longer than {0} bytes")]
    TooLarge(usize),
    /// Text or bytes where an element must start.
    #[error("unexpected data between stanzas: {0:?}")]
    Unexpected(String),
    /// A stanza that is not UTF-8.
    #[error("stanza is not UTF-8")]
    NotUtf8,
    /// A closing tag with no element open.
    #[error("closing tag without an open element")]
    Unbalanced,
}

/// Where the scan of a stanza in progress stopped.
#[derive(Debug, Clone, Copy, Default)]
struct Resume {
    /// Offset in the buffer the scan continues from.
    at: usize,
    /// Elements open at that point.
    depth: usize,
}

/// The framer; see the module doc.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max_stanza: usize,
    resume: Option<Resume>,
}

/// The keepalive character U+0200 in UTF-8.
const KEEPALIVE: [u8; 2] = [0xc8, 0x80];
const OPEN: &[u8] = b"<stream:stream";
const CLOSE: &[u8] = b"</stream:stream";

impl Framer {
    /// A framer that refuses stanzas longer than `max_stanza` bytes.
    pub fn new(max_stanza: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_stanza,
            resume: None,
        }
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let start = self.skip_filler();
            self.buf.drain(..start);
            if self.resume.is_none() {
                self.resume = Some(Resume::default());
            }
            let Some(&first) = self.buf.first() else {
                self.resume = None;
                return Ok(None);
            };
            if self.buf == KEEPALIVE[..1] {
                // Half a keepalive: its second byte is still on the way.
                return Ok(None);
            }
            if first != b'<' {
                let shown = String::from_utf8_lossy(&self.buf[..self.buf.len().min(40)]).into_owned();
                return Err(FrameError::Unexpected(shown));
            }
            match self.prolog()? {
                Prolog::Markup(len) => {
                    self.buf.drain(..len);
                    self.resume = None;
                    continue;
                }
                Prolog::Frame(len, frame) => {
                    self.buf.drain(..len);
                    self.resume = None;
                    return Ok(Some(frame));
                }
                Prolog::Wait => return Ok(None),
                Prolog::Element => {}
            }
            return match self.scan_element()? {
                Some(end) => {
                    let bytes: Vec<u8> = self.buf.drain(..end).collect();
                    self.resume = None;
                    String::from_utf8(bytes)
                        .map(|s| Some(Frame::Stanza(s)))
                        .map_err(|_| FrameError::NotUtf8)
                }
                None if self.buf.len() > self.max_stanza => Err(FrameError::TooLarge(self.max_stanza)),
                None => Ok(None),
            };
        }
    }

    /// Offset of the first byte that is not whitespace or a keepalive.
    fn skip_filler(&self) -> usize {
        let mut i = 0;
        while i < self.buf.len() {
            if self.buf[i].is_ascii_whitespace() {
                i += 1;
            } else if self.buf[i..].starts_with(&KEEPALIVE) {
                i += 2;
            } else {
                break;
            }
        }
        i
    }

    /// Declarations, comments and the stream's own tags at the buffer's start.
    fn prolog(&self) -> Result<Prolog, FrameError> {
        let b = &self.buf;
        let complete = |end: Option<usize>, what: fn(usize) -> Prolog| match end {
            Some(end) => Ok(what(end)),
            None if b.len() > self.max_stanza => Err(FrameError::TooLarge(self.max_stanza)),
            None => Ok(Prolog::Wait),
        };
        if b.starts_with(b"<?") {
            return complete(find(b, b"?>").map(|e| e + 2), Prolog::Markup);
        }
        if b.starts_with(b"<!--") {
            return complete(find(b, b"-->").map(|e| e + 3), Prolog::Markup);
        }
        if b.starts_with(CLOSE) {
            return complete(tag_end(b, 0), |end| Prolog::Frame(end, Frame::StreamClose));
        }
        if b.starts_with(OPEN) && b.get(OPEN.len()).is_some_and(|c| c.is_ascii_whitespace() || *c == b'>') {
            return match tag_end(b, 0) {
                Some(end) => {
                    let tag = std::str::from_utf8(&b[..end]).map_err(|_| FrameError::NotUtf8)?;
                    Ok(Prolog::Frame(end, Frame::StreamOpen(tag.to_string())))
                }
                None => complete(None, Prolog::Markup),
            };
        }
        let undecided = [OPEN, CLOSE, b"<?".as_slice(), b"<!--".as_slice()]
            .iter()
            .any(|prefix| b.len() <= prefix.len() && prefix.starts_with(b));
        Ok(if undecided { Prolog::Wait } else { Prolog::Element })
    }

    /// Scans the element at the buffer's start from where the last scan stopped;
    /// its end offset once it is complete.
    fn scan_element(&mut self) -> Result<Option<usize>, FrameError> {
        let Resume { mut at, mut depth } = self.resume.unwrap_or_default();
        let b = &self.buf;
        while at < b.len() {
            if b[at] != b'<' {
                at += 1;
                continue;
            }
            let rest = &b[at..];
            let end = if rest.starts_with(b"<!--") {
                find(rest, b"-->").map(|e| at + e + 3)
            } else if rest.starts_with(b"<![CDATA[") {
                find(rest, b"]]>").map(|e| at + e + 3)
            } else if rest.starts_with(b"<?") {
                find(rest, b"?>").map(|e| at + e + 2)
            } else if rest.len() < 9 && (b"<![CDATA[".starts_with(rest) || b"<!--".starts_with(rest)) {
                None
            } else {
                match tag_end(b, at) {
                    Some(e) if rest.starts_with(b"</") => {
                        depth = depth.checked_sub(1).ok_or(FrameError::Unbalanced)?;
                        if depth == 0 {
                            return Ok(Some(e));
                        }
                        Some(e)
                    }
                    Some(e) if b[e - 2] == b'/' => {
                        if depth == 0 {
                            return Ok(Some(e));
                        }
                        Some(e)
                    }
                    Some(e) => {
                        depth += 1;
                        Some(e)
                    }
                    None => None,
                }
            };
            match end {
                Some(e) => at = e,
                None => break,
            }
        }
        self.resume = Some(Resume { at, depth });
        Ok(None)
    }
}

/// What the buffer starts with.
enum Prolog {
    /// Markup to drop (declaration, comment) of this many bytes.
    Markup(usize),
    /// A frame of this many bytes.
    Frame(usize, Frame),
    /// Cannot tell yet: wait for more bytes.
    Wait,
    /// An ordinary element.
    Element,
}

/// Offset just past the `>` closing the tag that starts at `from` (quotes respected).
fn tag_end(b: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &c) in b.iter().enumerate().skip(from + 1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(c),
            (None, b'>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Offset of the first `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
