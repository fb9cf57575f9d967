//! For `host/fuzz` only (feature `fuzzing`): what the runtime answers, as
//! bytes off the wire, through the same decode and conversion as the client.

use prost::Message;

use crate::{convert, proto};

/// Decodes `data` as the answer the first byte picks and converts it. Must
/// never panic, whatever the bytes.
pub fn runtime_answer(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 8 {
        0 => {
            if let Ok(r) = proto::ListPodSandboxResponse::decode(bytes) {
                r.items.into_iter().for_each(|s| drop(convert::sandbox(s)));
            }
        }
        1 => {
            if let Ok(r) = proto::PodSandboxStatusResponse::decode(bytes) {
                r.status.map(convert::sandbox_status);
            }
        }
        2 => {
            if let Ok(r) = proto::ListContainersResponse::decode(bytes) {
                r.containers
                    .into_iter()
                    .for_each(|c| drop(convert::container(c)));
            }
        }
        3 => {
            if let Ok(r) = proto::ContainerStatusResponse::decode(bytes) {
                r.status.map(convert::container_status);
            }
        }
        4 => {
            if let Ok(r) = proto::ListContainerStatsResponse::decode(bytes) {
                r.stats
                    .into_iter()
                    .for_each(|s| drop(convert::container_stats(s)));
            }
        }
        5 => {
            if let Ok(r) = proto::ImageStatusResponse::decode(bytes) {
                r.image.map(convert::image);
            }
        }
        6 => {
            if let Ok(r) = proto::ListImagesResponse::decode(bytes) {
                r.images.into_iter().for_each(|i| drop(convert::image(i)));
            }
        }
        _ => {
            if let Ok(r) = proto::ImageFsInfoResponse::decode(bytes) {
                r.image_filesystems
                    .into_iter()
                    .for_each(|f| drop(convert::filesystem_usage(f)));
            }
        }
    }
}
