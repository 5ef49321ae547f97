//! The contract of the dispatcher report list and of attachments, on both backends: the list
//! a keyset page at a time, newest first, within receive times, with what the server holds of
//! each file; a chunked upload to the media folder and the dispatcher's streamed download with
//! byte ranges.

use std::time::Duration;

use crewsafe_server::protocol::{
    AttachmentStatus, BatchResponse, DispatchAttachment, DispatchReportList, ItemStatus,
    ReportContent, UPLOAD_UNIT,
};
use serde_json::{json, Value};

use super::site;
use crate::common::alarms::*;
use crate::common::*;

/// `GET /v1/dispatch/reports` with this query string, as `token`.
fn reports_as(l: &Loop, token: Option<&str>, query: &str) -> reqwest::blocking::Response {
    let mut req = l.client.get(l.url(&format!("/v1/dispatch/reports{query}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

/// One page of the report list as [`DISPATCHER`].
fn reports(l: &Loop, query: &str) -> DispatchReportList {
    let resp = reports_as(l, Some(&l.dispatcher), query);
    assert_eq!(resp.status(), 200, "{query}");
    parse(resp)
}

/// Ids of a page's reports, in order.
fn ids(page: &DispatchReportList) -> Vec<String> {
    page.reports.iter().map(|r| r.id.clone()).collect()
}

/// Walks every page of `query` with `limit`, checking each page's size; the ids in order.
fn every_page(l: &Loop, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("?limit={limit}{query}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let page = reports(l, &q);
        assert!(page.reports.len() <= limit);
        out.extend(ids(&page));
        match page.next_cursor {
            Some(c) => {
                assert_eq!(page.reports.len(), limit, "a page before the last is full");
                cursor = Some(c);
            }
            None => return out,
        }
    }
}

/// The dispatcher report list: incident reports only, newest first, a keyset page at a time
/// (reports received meanwhile never shift a page), within receive times; its content as
/// sent; bad parameters and other tokens refused.
pub fn report_list(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let other = l.enroll_device("other-phone");
    // Five reports of two devices, each in its own batch, with an SOS among them.
    let mut sent = Vec::new();
    let mut received = Vec::new();
    for i in 0..5 {
        let mut r = report();
        r["content"]["narrative"] = json!(format!("report {i}"));
        let answer = if i == 2 {
            r["content"]["crew"]["device_id"] = json!("other-phone");
            let resp = l
                .client
                .post(l.url("/v1/records:batch"))
                .bearer_auth(&other)
                .body(json!({"protocol": 1, "records": [r]}).to_string())
                .send()
                .unwrap();
            parse::<BatchResponse>(resp).results
        } else {
            l.post_raw_records(&[r.clone(), sos()])
        };
        expect_item(&answer[0], &id_of(&r), ItemStatus::Accepted);
        received.push(answer[0].received_at.unwrap());
        sent.push(r);
        std::thread::sleep(Duration::from_millis(3));
    }
    let newest_first: Vec<String> = sent.iter().rev().map(id_of).collect();

    // Everything in one page by default, newest first, with its content as sent.
    let all = reports(&l, "");
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all.next_cursor, None);
    for (r, (record, at)) in all.reports.iter().rev().zip(sent.iter().zip(&received)) {
        assert_eq!(r.received_at, *at);
        assert_eq!(
            r.device_id,
            record["content"]["crew"]["device_id"].as_str().unwrap()
        );
        assert_eq!(r.device_time.to_rfc3339(), "2026-11-25T08:00:00+00:00");
        let content: ReportContent = serde_json::from_value(record["content"].clone()).unwrap();
        assert_eq!(r.content, content);
        assert!(r.attachments.is_empty());
    }

    // Pages of one, two and five: every report once, in order.
    assert_eq!(every_page(&l, "", 2), newest_first);
    assert_eq!(every_page(&l, "", 1), newest_first);
    assert_eq!(every_page(&l, "", 5), newest_first);

    // A report received while paging comes on a fresh first page, never on a later one.
    let first = reports(&l, "?limit=2");
    assert_eq!(ids(&first), newest_first[..2]);
    let late = report();
    l.send(std::slice::from_ref(&late));
    let second = reports(
        &l,
        &format!("?limit=2&cursor={}", first.next_cursor.clone().unwrap()),
    );
    assert_eq!(ids(&second), newest_first[2..4]);
    assert_eq!(ids(&reports(&l, "?limit=1"))[0], id_of(&late));

    // Receive-time bounds: `since` inclusive, `until` exclusive, paged alike.
    let t =
        |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let since = format!("&since={}", t(received[2]));
    let mut expected: Vec<String> = vec![id_of(&late)];
    expected.extend_from_slice(&newest_first[..3]);
    assert_eq!(every_page(&l, &since, 2), expected);
    let until = format!("&until={}", t(received[2]));
    assert_eq!(every_page(&l, &until, 1), newest_first[3..]);
    let window = format!("&since={}&until={}", t(received[1]), t(received[3]));
    assert_eq!(every_page(&l, &window, 10), newest_first[2..4]);
    // An offset time, percent-encoded, is the same instant.
    let offset = received[2].with_timezone(&chrono::FixedOffset::east_opt(5 * 3600).unwrap());
    let encoded = offset
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
        .replace('+', "%2B");
    assert_eq!(
        every_page(&l, &format!("&until={encoded}"), 10),
        newest_first[3..]
    );
    assert!(reports(&l, "?since=2100-01-01T00:00:00Z")
        .reports
        .is_empty());

    // Bad parameters and wrong tokens.
    for bad in [
        "?limit=0",
        "?limit=501",
        "?limit=two",
        "?cursor=not-a-cursor",
        "?since=yesterday",
        "?until=2026-13-01T00:00:00Z",
        "?since=2026-11-25T08:00:01Z&until=2026-11-25T08:00:00Z",
    ] {
        expect_error(reports_as(&l, Some(&l.dispatcher), bad), 400, "malformed");
    }
    expect_error(reports_as(&l, None, ""), 401, "unauthorized");
    expect_error(reports_as(&l, Some(&l.token), ""), 401, "unauthorized");
    expect_error(reports_as(&l, Some("not-a-token"), ""), 401, "unauthorized");
}

fn sha_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A report of [`DEVICE`] committing to these files: `(id, kind, MIME type, bytes)`.
fn report_with(files: &[(&str, &str, &str, &[u8])]) -> Value {
    let mut r = report();
    r["content"]["attachments"] = files
        .iter()
        .map(|(id, kind, mime, bytes)| {
            json!({
                "id": id, "kind": kind, "mime_type": mime, "size": bytes.len(),
                "sha256": sha_hex(bytes), "captured_at": T0
            })
        })
        .collect();
    r
}

/// `PUT` one chunk of an attachment as [`DEVICE`].
fn put_chunk(l: &Loop, report: &str, id: &str, offset: usize, chunk: &[u8]) -> AttachmentStatus {
    let resp = l
        .client
        .put(l.url(&format!("/v1/reports/{report}/attachments/{id}")))
        .bearer_auth(&l.token)
        .header("upload-offset", offset.to_string())
        .header("chunk-sha256", sha_hex(chunk))
        .body(chunk.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    parse(resp)
}

/// Attachments uploaded in chunks to the server's media folder (configured with
/// `with_media_dir`, as PostgreSQL needs) and downloaded by a dispatcher: the report list
/// shows what is held of each file; the download streams the same bytes with the MIME type,
/// length, a strong `ETag` and single byte ranges; files not stored, device tokens and no
/// token are refused.
pub fn attachment_round_trip(b: Backend) {
    let media = tempfile::tempdir().unwrap();
    let media_dir = media.path().join("media");
    let Some(l) = site(b, |c| c.with_media_dir(&media_dir)) else {
        return;
    };
    let photo: Vec<u8> = (0..UPLOAD_UNIT as usize + 1000)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let audio = b"not uploaded".to_vec();
    let (photo_id, audio_id) = (new_id(), new_id());
    let r = report_with(&[
        (&photo_id, "photo", "image/png", &photo),
        (&audio_id, "audio", "audio/ogg", &audio),
    ]);
    let report_id = id_of(&r);
    l.send(std::slice::from_ref(&r));
    let held = |l: &Loop| -> Vec<DispatchAttachment> {
        let page = reports(l, "");
        assert_eq!(page.reports.len(), 1);
        assert_eq!(page.reports[0].content.attachments.len(), 2);
        page.reports[0].attachments.clone()
    };
    let before = held(&l);
    assert_eq!(
        before.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [photo_id.as_str(), audio_id.as_str()]
    );
    assert_eq!(before[0].mime_type, "image/png");
    assert_eq!(before[0].size, photo.len() as u64);
    assert_eq!(before[0].sha256, sha_hex(&photo));
    assert!(before.iter().all(|a| !a.stored && a.received == 0));

    // The first unit, then the rest.
    let unit = UPLOAD_UNIT as usize;
    let half = put_chunk(&l, &report_id, &photo_id, 0, &photo[..unit]);
    assert_eq!((half.received, half.stored), (UPLOAD_UNIT, false));
    let midway = held(&l);
    assert_eq!((midway[0].received, midway[0].stored), (UPLOAD_UNIT, false));
    let done = put_chunk(&l, &report_id, &photo_id, unit, &photo[unit..]);
    assert!(done.stored);
    let after = held(&l);
    assert_eq!(
        (after[0].stored, after[0].received),
        (true, photo.len() as u64)
    );
    assert_eq!((after[1].stored, after[1].received), (false, 0));
    assert!(media_dir.join("objects").join(sha_hex(&photo)).exists());

    // The report's own list says the same.
    let url = |path: &str| {
        l.url(&format!(
            "/v1/dispatch/reports/{report_id}/attachments{path}?device_id={DEVICE}"
        ))
    };
    let listed: Value = parse(
        l.client
            .get(url(""))
            .bearer_auth(&l.dispatcher)
            .send()
            .unwrap(),
    );
    let listed: Vec<DispatchAttachment> =
        serde_json::from_value(listed["attachments"].clone()).unwrap();
    assert_eq!(listed, after);

    // The whole file.
    let get = |path: &str, range: Option<&str>| {
        let mut req = l.client.get(url(path)).bearer_auth(&l.dispatcher);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send().unwrap()
    };
    let path = format!("/{photo_id}");
    let resp = get(&path, None);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(
        resp.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", sha_hex(&photo))
    );
    assert_eq!(resp.content_length(), Some(photo.len() as u64));
    assert_eq!(resp.bytes().unwrap().as_ref(), photo.as_slice());

    // Single byte ranges.
    let size = photo.len();
    for (range, first, last) in [
        ("bytes=10-19", 10, 19),
        ("bytes=-5", size - 5, size - 1),
        ("bytes=262140-", 262_140, size - 1),
        ("bytes=0-99999999", 0, size - 1),
    ] {
        let resp = get(&path, Some(range));
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"].to_str().unwrap(),
            format!("bytes {first}-{last}/{size}")
        );
        assert_eq!(resp.content_length(), Some((last - first + 1) as u64));
        let (at, status) = (resp.url().path().to_string(), resp.status().as_u16());
        let body = resp.bytes().unwrap();
        openapi::check(&at, status, &body);
        assert_eq!(body.as_ref(), &photo[first..=last], "{range}");
    }
    // Several ranges, or an If-Range for other bytes: the whole file.
    assert_eq!(get(&path, Some("bytes=0-1,5-6")).status(), 200);
    let resp = l
        .client
        .get(url(&path))
        .bearer_auth(&l.dispatcher)
        .header("range", "bytes=0-9")
        .header("if-range", "\"something else\"")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = get(&path, Some(&format!("bytes={size}-")));
    assert_eq!(
        resp.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{size}")
    );
    expect_error(resp, 416, "malformed");

    // Not stored, unknown, or not a dispatcher.
    expect_error(get(&format!("/{audio_id}"), None), 404, "not_found");
    expect_error(get(&format!("/{}", new_id()), None), 404, "not_found");
    let resp = l
        .client
        .get(url(&path))
        .bearer_auth(&l.token)
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    expect_error(
        l.client.get(url(&path)).send().unwrap(),
        401,
        "unauthorized",
    );
}
