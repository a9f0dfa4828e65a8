//! A 10,000-part upload completes, and the object reads back byte-exact. The server is started
//! with a 1-byte minimum part size so that the test moves kilobytes, not 50 GB; completion
//! joins chunk lists in one metadata transaction and moves no data.

mod common;

use std::time::Instant;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;

const PARTS: i32 = 10_000;
const CONCURRENCY: usize = 32;

fn part_body(n: i32) -> Vec<u8> {
    format!("part-{n:05};").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10000_part_upload_completes_and_reads_back() {
    let server = common::Server::start_with(&["--min-part-size", "1"]);
    let client = server.client();
    client.create_bucket().bucket("parts").send().await.unwrap();
    let upload = client
        .create_multipart_upload()
        .bucket("parts")
        .key("many")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap().to_owned();

    let mut completed: Vec<CompletedPart> = futures::stream::iter(1..=PARTS)
        .map(|n| {
            let (client, id) = (client.clone(), id.clone());
            async move {
                let out = client
                    .upload_part()
                    .bucket("parts")
                    .key("many")
                    .upload_id(id)
                    .part_number(n)
                    .body(part_body(n).into())
                    .send()
                    .await
                    .unwrap();
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(out.e_tag().unwrap())
                    .build()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    completed.sort_by_key(|p| p.part_number());

    let started = Instant::now();
    let done = client
        .complete_multipart_upload()
        .bucket("parts")
        .key("many")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    eprintln!(
        "CompleteMultipartUpload of {PARTS} parts took {:?} (request round trip)",
        started.elapsed()
    );
    assert!(done.e_tag().unwrap().ends_with(&format!("-{PARTS}\"")));

    let expected: Vec<u8> = (1..=PARTS).flat_map(part_body).collect();
    let got = client
        .get_object()
        .bucket("parts")
        .key("many")
        .send()
        .await
        .unwrap();
    assert_eq!(got.parts_count(), None, "a plain GET does not report parts");
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.len(), expected.len());
    assert!(
        bytes.as_ref() == expected.as_slice(),
        "the assembled object differs"
    );

    let last = client
        .get_object()
        .bucket("parts")
        .key("many")
        .part_number(PARTS)
        .send()
        .await
        .unwrap();
    assert_eq!(last.parts_count(), Some(PARTS));
    assert_eq!(
        last.body.collect().await.unwrap().into_bytes().as_ref(),
        part_body(PARTS).as_slice()
    );
}
