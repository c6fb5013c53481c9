//! A stanza as a small element tree, parsed with quick-xml: names as written (with
//! their prefix), attributes and text unescaped, comments and whitespace-only text
//! dropped. Bounded: at most [`MAX_DEPTH`] levels (the framer bounds the size).

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Deepest nesting accepted (the deepest real message nests about 10).
pub const MAX_DEPTH: usize = 32;

/// One element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The name as written, with its prefix (`stream:features`).
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// The element's own text (trimmed; concatenated when interrupted by children).
    pub text: String,
}

/// Why a stanza is not well-formed XML (or too deep).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed stanza: {0}")]
pub struct ParseError(pub String);

impl Element {
    /// Parses one stanza (a single top-level element).
    pub fn parse(stanza: &str) -> Result<Element, ParseError> {
        let mut reader = Reader::from_str(stanza);
        reader.config_mut().trim_text(true);
        let mut stack: Vec<Element> = Vec::new();
        loop {
            let event = reader.read_event().map_err(|e| ParseError(e.to_string()))?;
            match event {
                Event::Start(start) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(ParseError(format!("nested deeper than {MAX_DEPTH}")));
                    }
                    stack.push(open(&start)?);
                }
                Event::Empty(start) => {
                    let element = open(&start)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return finish(element, &mut reader),
                    }
                }
                Event::End(_) => {
                    let element = stack.pop().ok_or_else(|| ParseError("unbalanced end tag".into()))?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return finish(element, &mut reader),
                    }
                }
                Event::Text(text) => {
                    let text = text.unescape().map_err(|e| ParseError(e.to_string()))?;
                    append_text(&mut stack, &text)?;
                }
                Event::CData(data) => {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    append_text(&mut stack, &text)?;
                }
                Event::Eof => return Err(ParseError("ends inside an element".into())),
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn open(start: &BytesStart<'_>) -> Result<Element, ParseError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| ParseError(e.to_string()))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr.unescape_value().map_err(|e| ParseError(e.to_string()))?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        ..Element::default()
    })
}

fn append_text(stack: &mut [Element], text: &str) -> Result<(), ParseError> {
    match stack.last_mut() {
        Some(e) => {
            e.text.push_str(text);
            Ok(())
        }
        None => Err(ParseError("text outside the element".into())),
    }
}

/// The top-level element is complete: nothing but whitespace may follow it.
fn finish(element: Element, reader: &mut Reader<&[u8]>) -> Result<Element, ParseError> {
    loop {
        match reader.read_event().map_err(|e| ParseError(e.to_string()))? {
            Event::Eof => return Ok(element),
            Event::Comment(_) | Event::Text(_) => {}
            _ => return Err(ParseError("more than one element".into())),
        }
    }
}

impl Element {
    /// The element as XML text (attributes and text escaped), for tools that forward
    /// what they received.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_xml(&mut out);
        out
    }

    fn write_xml(&self, out: &mut String) {
        use quick_xml::escape::escape;
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape(v.as_str()));
            out.push('"');
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        out.push_str(&escape(self.text.as_str()));
        for c in &self.children {
            c.write_xml(out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}
