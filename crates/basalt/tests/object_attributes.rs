//! GetObjectAttributes as AWS answers it: ETag, checksum, parts (paged), storage class and
//! size, for the current object, an older version, and an SSE-C object (key required).

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart,
    ObjectAttributes, VersioningConfiguration,
};
use common::{Server, error_code};

const BUCKET: &str = "attrs";

fn all() -> Vec<ObjectAttributes> {
    vec![
        ObjectAttributes::Etag,
        ObjectAttributes::Checksum,
        ObjectAttributes::ObjectParts,
        ObjectAttributes::StorageClass,
        ObjectAttributes::ObjectSize,
    ]
}

#[tokio::test]
async fn attributes_of_single_and_multipart_objects_and_versions() {
    let server = Server::start_with(&["--min-part-size", "1024"]);
    let client = server.client();
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    client
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let first = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_static(b"first version"))
        .send()
        .await
        .expect("put");
    let attrs = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key("k")
        .set_object_attributes(Some(all()))
        .send()
        .await
        .expect("attributes");
    assert_eq!(attrs.object_size(), Some(13));
    assert_eq!(
        attrs.e_tag().map(|e| e.trim_matches('"')),
        first.e_tag().map(|e| e.trim_matches('"'))
    );
    assert_eq!(attrs.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    assert_eq!(
        attrs.checksum().and_then(|c| c.checksum_crc32()),
        first.checksum_crc32()
    );
    assert!(attrs.object_parts().is_none(), "a single PUT has no parts");
    assert_eq!(attrs.version_id(), first.version_id());

    // A multipart object of three parts, paged two at a time.
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .expect("upload");
    let id = upload.upload_id().expect("id");
    let mut done = CompletedMultipartUpload::builder();
    for (n, size) in [(1, 2000usize), (2, 3000), (3, 500)] {
        let part = client
            .upload_part()
            .bucket(BUCKET)
            .key("k")
            .upload_id(id)
            .part_number(n)
            .body(common::bytes_of(size, n as u64).into())
            .send()
            .await
            .expect("part");
        done = done.parts(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .upload_id(id)
        .multipart_upload(done.build())
        .send()
        .await
        .expect("complete");
    let page = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key("k")
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::ObjectSize)
        .max_parts(2)
        .send()
        .await
        .expect("attributes");
    assert_eq!(page.object_size(), Some(5500));
    let parts = page.object_parts().expect("parts");
    assert_eq!(parts.total_parts_count(), Some(3));
    assert_eq!(parts.is_truncated(), Some(true));
    let sizes: Vec<(Option<i32>, Option<i64>)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(sizes, [(Some(1), Some(2000)), (Some(2), Some(3000))]);
    let next = parts.next_part_number_marker().expect("marker");
    let rest = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key("k")
        .object_attributes(ObjectAttributes::ObjectParts)
        .max_parts(2)
        .part_number_marker(next)
        .send()
        .await
        .expect("second page");
    let parts = rest.object_parts().expect("parts");
    assert_eq!(parts.is_truncated(), Some(false));
    let numbers: Vec<Option<i32>> = parts.parts().iter().map(|p| p.part_number()).collect();
    assert_eq!(numbers, [Some(3)]);
    assert!(rest.e_tag().is_none(), "only what was asked");

    // The older version still answers for itself.
    let old = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key("k")
        .version_id(first.version_id().expect("version"))
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect("old version");
    assert_eq!(old.object_size(), Some(13));

    // Missing keys, versions and delete markers.
    let err = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key("absent")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect_err("absent");
    assert_eq!(error_code(&err), "NoSuchKey");
    client
        .delete_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .expect("delete");
    let err = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key("k")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect_err("a delete marker");
    assert_eq!(error_code(&err), "NoSuchKey");
}

#[tokio::test]
async fn an_sse_c_objects_attributes_need_its_key() {
    let server = Server::start_with(&["--sse-c-over-http"]);
    let client = server.client();
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let key = [7u8; 32];
    let key_b64 = base64_simd::STANDARD.encode_to_string(key);
    let md5_b64 = {
        use md5::{Digest, Md5};
        base64_simd::STANDARD.encode_to_string(Md5::digest(key))
    };
    client
        .put_object()
        .bucket(BUCKET)
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b64)
        .sse_customer_key_md5(&md5_b64)
        .body(ByteStream::from_static(b"customer-encrypted"))
        .send()
        .await
        .expect("put");
    let err = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key("secret")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect_err("without the key");
    assert_eq!(error_code(&err), "InvalidRequest");
    let attrs = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key("secret")
        .object_attributes(ObjectAttributes::ObjectSize)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b64)
        .sse_customer_key_md5(&md5_b64)
        .send()
        .await
        .expect("with the key");
    assert_eq!(attrs.object_size(), Some(18));
}
