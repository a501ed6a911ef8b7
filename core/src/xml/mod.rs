//! XML stream framing: turns the bytes of one `<stream:stream>` into the
//! stream header and a sequence of top-level elements (stanzas and nonzas).
//!
//! Incremental: bytes may arrive split anywhere; the reader keeps partial
//! state between calls. A new reader is needed for every stream restart
//! (after STARTTLS and after SASL success, RFC 6120 §5.4.3.3 and §6.4.6).

use crate::ns::NS_STREAM;
use minidom::tree_builder::TreeBuilder;
use minidom::Element;
use rxml::error::EndOrError;
use rxml::{Parse, RawEvent, RawParser};

/// Upper bound for one top-level element, so a hostile server cannot make
/// us buffer without end.
pub const DEFAULT_MAX_ELEMENT_BYTES: usize = 1 << 20;

/// Deepest nesting accepted, counting the stream element: XMPP stanzas
/// nest a dozen levels at most (an archived, encrypted message), while
/// unbounded nesting would let a peer overflow the stack on drop.
pub const MAX_DEPTH: usize = 64;

/// What the reader found in the bytes it was given.
#[derive(Debug)]
pub enum StreamItem {
    /// The `<stream:stream>` opening tag (its attributes are not needed:
    /// the stream id matters only to dialback and the old digest auth).
    Header,
    /// One complete child of the stream element.
    Element(Element),
    /// `</stream:stream>`: the peer closed the stream.
    End,
}

/// Why the byte stream cannot be read as XMPP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("not well-formed XML")]
    NotWellFormed,
    #[error("a top-level element is larger than {limit} bytes")]
    ElementTooLarge { limit: usize },
    #[error("the stream does not start with <stream:stream>")]
    NotAStream,
    #[error("elements are nested deeper than {limit} levels")]
    TooDeep { limit: usize },
}

/// Incremental reader for one XML stream.
pub struct StreamReader {
    parser: RawParser,
    tree: TreeBuilder,
    /// Bytes consumed since the current top-level element began.
    element_bytes: usize,
    max_element_bytes: usize,
    header_seen: bool,
    failed: Option<XmlError>,
}

impl Default for StreamReader {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ELEMENT_BYTES)
    }
}

impl StreamReader {
    pub fn new(max_element_bytes: usize) -> Self {
        Self {
            parser: RawParser::new(),
            tree: TreeBuilder::new(),
            element_bytes: 0,
            max_element_bytes,
            header_seen: false,
            failed: None,
        }
    }

    /// Feeds bytes and returns every item they complete. After an error the
    /// reader stays failed: the stream cannot be resynchronised.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<StreamItem>, XmlError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut items = Vec::new();
        loop {
            let before = bytes.len();
            let result = self.parser.parse(&mut bytes, false);
            // Counted before the header closes too: a header without end
            // must not be buffered without end either.
            if !self.header_seen || self.tree.depth() >= 1 {
                self.element_bytes += before - bytes.len();
                if self.element_bytes > self.max_element_bytes {
                    return self.fail(XmlError::ElementTooLarge {
                        limit: self.max_element_bytes,
                    });
                }
            }
            match result {
                Ok(Some(event)) => {
                    if let Some(item) = self.process(event)? {
                        items.push(item);
                    }
                }
                Ok(None) => {
                    items.push(StreamItem::End);
                    return Ok(items);
                }
                Err(EndOrError::NeedMoreData) => return Ok(items),
                Err(EndOrError::Error(_)) => return self.fail(XmlError::NotWellFormed),
            }
        }
    }

    fn fail<T>(&mut self, err: XmlError) -> Result<T, XmlError> {
        self.failed = Some(err.clone());
        Err(err)
    }

    fn process(&mut self, event: RawEvent) -> Result<Option<StreamItem>, XmlError> {
        // Whitespace keepalives between stanzas would otherwise pile up as
        // text children of the stream element.
        if matches!(event, RawEvent::Text(..)) && self.tree.depth() <= 1 {
            return Ok(None);
        }
        if matches!(event, RawEvent::ElementFoot(_)) && self.tree.depth() == 1 {
            return Ok(Some(StreamItem::End));
        }
        if matches!(event, RawEvent::ElementHeadOpen(..)) && self.tree.depth() >= MAX_DEPTH {
            return self.fail(XmlError::TooDeep { limit: MAX_DEPTH });
        }
        let is_head_close = matches!(event, RawEvent::ElementHeadClose(_));
        let is_foot = matches!(event, RawEvent::ElementFoot(_));
        if self.tree.process_event(event).is_err() {
            return self.fail(XmlError::NotWellFormed);
        }
        if is_head_close && !self.header_seen && self.tree.depth() == 1 {
            self.header_seen = true;
            let Some(root) = self.tree.top() else {
                return self.fail(XmlError::NotAStream);
            };
            if !root.is("stream", NS_STREAM) {
                return self.fail(XmlError::NotAStream);
            }
            self.element_bytes = 0;
            return Ok(Some(StreamItem::Header));
        }
        if is_foot && self.tree.depth() == 1 {
            self.element_bytes = 0;
            if let Some(element) = self.tree.unshift_child() {
                return Ok(Some(StreamItem::Element(element)));
            }
        }
        Ok(None)
    }
}

/// Parses one standalone XML document (an encrypted payload's plaintext,
/// say) with the same bounds as the stream: at most `max_bytes` and
/// [`MAX_DEPTH`] levels.
pub fn parse_document(mut bytes: &[u8], max_bytes: usize) -> Result<Element, XmlError> {
    if bytes.len() > max_bytes {
        return Err(XmlError::ElementTooLarge { limit: max_bytes });
    }
    let mut parser = RawParser::new();
    let mut tree = TreeBuilder::new();
    loop {
        match parser.parse(&mut bytes, true) {
            Ok(Some(event)) => {
                if matches!(event, RawEvent::ElementHeadOpen(..)) && tree.depth() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep { limit: MAX_DEPTH });
                }
                tree.process_event(event)
                    .map_err(|_| XmlError::NotWellFormed)?;
            }
            Ok(None) => break,
            Err(_) => return Err(XmlError::NotWellFormed),
        }
    }
    tree.root.take().ok_or(XmlError::NotWellFormed)
}

/// Escapes text for use in XML character data and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Serialises an element for the wire; empty when it cannot be.
///
/// Elements we build always serialise. A received one need not: minidom's
/// writer panics (instead of returning an error) on a prefix declaration
/// that clashes with one of its own, e.g. a stanza declaring `xmlns:stream`
/// for another namespace (found by the `xml_stream` fuzz target). Nothing
/// re-serialises received elements today; this keeps it from becoming a
/// remote crash if something does.
pub fn to_bytes(element: &Element) -> Vec<u8> {
    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = Vec::with_capacity(256);
        element.write_to(&mut out).map(|()| out)
    }));
    match written {
        Ok(Ok(out)) => out,
        Ok(Err(_)) | Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='example.org' version='1.0'>";

    fn elements(items: &[StreamItem]) -> Vec<&Element> {
        items
            .iter()
            .filter_map(|i| match i {
                StreamItem::Element(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_stanzas() {
        let doc = format!(
            "{HEADER} <message to='a@b' id='1'><body>h&amp;i</body></message>\n<presence/></stream:stream>"
        );
        for split in 1..doc.len() {
            if !doc.is_char_boundary(split) {
                continue;
            }
            let mut reader = StreamReader::default();
            let mut items = reader.feed(&doc.as_bytes()[..split]).unwrap();
            items.extend(reader.feed(&doc.as_bytes()[split..]).unwrap());
            assert!(matches!(&items[0], StreamItem::Header));
            let els = elements(&items);
            assert_eq!(els.len(), 2, "split at {split}");
            assert!(els[0].is("message", "jabber:client"));
            assert_eq!(
                els[0].get_child("body", "jabber:client").unwrap().text(),
                "h&i"
            );
            assert!(matches!(items.last(), Some(StreamItem::End)));
        }
    }

    #[test]
    fn malformed_xml_is_an_error_that_sticks() {
        let mut reader = StreamReader::default();
        reader.feed(HEADER.as_bytes()).unwrap();
        assert_eq!(
            reader.feed(b"<message><body></message>").unwrap_err(),
            XmlError::NotWellFormed
        );
        assert_eq!(
            reader.feed(b"<presence/>").unwrap_err(),
            XmlError::NotWellFormed
        );
    }

    #[test]
    fn an_oversized_element_is_refused_before_it_is_buffered() {
        let mut reader = StreamReader::new(1000);
        reader.feed(HEADER.as_bytes()).unwrap();
        let big = format!("<message><body>{}</body></message>", "x".repeat(5000));
        assert!(matches!(
            reader.feed(big.as_bytes()),
            Err(XmlError::ElementTooLarge { limit: 1000 })
        ));
    }

    #[test]
    fn a_document_that_is_not_a_stream_is_refused() {
        let mut reader = StreamReader::default();
        assert_eq!(
            reader
                .feed(b"<html xmlns='http://www.w3.org/1999/xhtml'><body/>")
                .unwrap_err(),
            XmlError::NotAStream
        );
    }

    #[test]
    fn a_received_element_minidom_cannot_write_serialises_to_nothing() {
        let mut reader = StreamReader::default();
        let items = reader
            .feed(
                format!(
                    "{HEADER}<message xmlns:stream='urn:example:a' id='x'>\
                     <forwarded xmlns:stream='urn:example:b'/></message>"
                )
                .as_bytes(),
            )
            .unwrap();
        let Some(StreamItem::Element(element)) = items.into_iter().last() else {
            panic!("no element")
        };
        assert_eq!(element.attr("id"), Some("x"));
        assert_eq!(to_bytes(&element), Vec::<u8>::new());
    }

    #[test]
    fn undeclared_prefixes_are_not_well_formed() {
        let mut reader = StreamReader::default();
        reader.feed(HEADER.as_bytes()).unwrap();
        assert!(reader.feed(b"<foo:bar/>").is_err());
    }

    fn nested(depth: usize) -> String {
        let mut doc = String::new();
        for _ in 0..depth {
            doc.push_str("<x xmlns='urn:example:deep'>");
        }
        for _ in 0..depth {
            doc.push_str("</x>");
        }
        doc
    }

    #[test]
    fn deep_nesting_is_refused_before_it_can_overflow_the_stack() {
        let mut reader = StreamReader::default();
        let fine = format!("{HEADER}<message>{}</message>", nested(MAX_DEPTH - 3));
        assert_eq!(elements(&reader.feed(fine.as_bytes()).unwrap()).len(), 1);
        let mut reader = StreamReader::default();
        let deep = format!("{HEADER}<message>{}</message>", nested(100_000));
        assert!(matches!(
            reader.feed(deep.as_bytes()),
            Err(XmlError::TooDeep { .. })
        ));
        // Also inside <stream:features>, before TLS.
        let mut reader = StreamReader::default();
        let deep = format!(
            "{HEADER}<stream:features>{}</stream:features>",
            nested(1_000)
        );
        assert!(matches!(
            reader.feed(deep.as_bytes()),
            Err(XmlError::TooDeep { .. })
        ));
        assert!(matches!(
            parse_document(nested(100_000).as_bytes(), 10 << 20),
            Err(XmlError::TooDeep { .. })
        ));
        assert!(parse_document(nested(10).as_bytes(), 1 << 20).is_ok());
    }

    #[test]
    fn a_header_that_never_closes_is_bounded() {
        let mut reader = StreamReader::new(1000);
        let mut head = String::from(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' ",
        );
        head.push_str("a='");
        head.push_str(&"x".repeat(5000));
        assert!(matches!(
            reader.feed(head.as_bytes()),
            Err(XmlError::ElementTooLarge { limit: 1000 })
        ));
    }
}
