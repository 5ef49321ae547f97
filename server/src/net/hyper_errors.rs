//! JSON bodies for the answers hyper writes by itself.
//!
//! When hyper cannot parse a request (headers larger than its buffer, too many headers, a
//! broken request line) it answers on its own, before any handler runs, with an empty body
//! (`431`, `400`, ...) and closes the connection. Every other answer of this server carries
//! an `ErrorBody`, and clients rely on that. [`JsonErrors`] wraps a connection's stream and
//! replaces such an answer, recognized by its head (a 4xx/5xx status, `content-length: 0`, no
//! `content-type`, which no handler's answer has), by the same status with a JSON body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crewsafe_protocol::{ErrorBody, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose hyper-made error answers get JSON bodies.
pub(super) struct JsonErrors<I> {
    inner: I,
    /// The replacement being written and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<I> JsonErrors<I> {
    pub(super) fn new(inner: I) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The status of `buf` if it starts with the head of an answer hyper made by itself.
fn hyper_error(buf: &[u8]) -> Option<u16> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let code: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if !(400..600).contains(&code) {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = buf[..end + 2].to_ascii_lowercase();
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    (has(b"\r\ncontent-length: 0\r\n") && !has(b"\r\ncontent-type:")).then_some(code)
}

/// The same answer with an [`ErrorBody`].
fn json_answer(code: u16) -> Vec<u8> {
    let (error, message) = match code {
        431 => (
            ErrorCode::HeadersTooLarge,
            "the request headers are larger than the server accepts",
        ),
        408 => (ErrorCode::Timeout, "the request arrived too slowly"),
        _ => (
            ErrorCode::Malformed,
            "the request could not be parsed as HTTP/1.1",
        ),
    };
    let body = serde_json::to_vec(&ErrorBody {
        error,
        message: message.into(),
    })
    .unwrap_or_default();
    let reason = hyper::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonErrors<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonErrors<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            match hyper_error(buf) {
                Some(code) => self.pending = Some((json_answer(code), 0)),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        // Hyper closes the connection after such an answer: what it wrote is consumed once
        // the replacement is out, and nothing else follows.
        let this = &mut *self;
        let Some((replacement, sent)) = this.pending.as_mut() else {
            return Poll::Ready(Ok(buf.len()));
        };
        while *sent < replacement.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &replacement[*sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_made_errors_are_recognized() {
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_error(hyper_431), Some(431));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error(ours), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error(ok), None);
        assert_eq!(hyper_error(b"{\"HTTP/1.1 400"), None);
        let answer = String::from_utf8(json_answer(431)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(answer.ends_with("\"error\":\"headers_too_large\",\"message\":\"the request headers are larger than the server accepts\"}"));
    }
}
