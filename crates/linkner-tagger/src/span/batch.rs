//! From window items to batches: the host arrays of a batch ([`HostBatch`], built apart from the
//! device so that another thread can prepare the next batch), its tensors ([`build_batch`]), and
//! length buckets ([`length_buckets`]).

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::SpanBatch;
use super::features::SPAN_SHAPE_FEATURES;
use super::prepare::WindowItem;

/// The host arrays of a batch of windows (right-padded), ready to be copied to a device; built
/// apart from the device so that another thread can prepare the next batch while the device
/// runs the current one.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Windows × padded length.
    pub dims: [usize; 2],
    /// Token ids, row-major `[windows, length]`.
    pub ids: Vec<i64>,
    /// 1.0 for tokens, 0.0 for padding.
    pub mask: Vec<f32>,
    /// Flat index of each span's first sub-token.
    pub start: Vec<i64>,
    /// Flat index of each span's last sub-token.
    pub end: Vec<i64>,
    /// `width - 1` of each span.
    pub width: Vec<i64>,
    /// Shape features, `SPAN_SHAPE_FEATURES` per span.
    pub shape: Vec<f32>,
}

impl HostBatch {
    /// The arrays of `items` (right-padded with `pad_id`).
    pub fn new(items: &[&WindowItem], pad_id: u32) -> HostBatch {
        let b = items.len();
        let t = items
            .iter()
            .map(|i| i.enc.ids.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let spans: usize = items.iter().map(|i| i.spans.len()).sum();
        let mut hb = HostBatch {
            dims: [b, t],
            ids: vec![i64::from(pad_id); b * t],
            mask: vec![0f32; b * t],
            start: Vec::with_capacity(spans),
            end: Vec::with_capacity(spans),
            width: Vec::with_capacity(spans),
            shape: Vec::with_capacity(spans * SPAN_SHAPE_FEATURES),
        };
        for (bi, item) in items.iter().enumerate() {
            for (k, id) in item.enc.ids.iter().enumerate() {
                hb.ids[bi * t + k] = i64::from(*id);
                hb.mask[bi * t + k] = 1.0;
            }
            for (k, &(s, e)) in item.spans.iter().enumerate() {
                let (first, last) = item.positions[k];
                hb.start.push((bi * t + first) as i64);
                hb.end.push((bi * t + last) as i64);
                hb.width.push((e - s - 1) as i64);
                hb.shape.extend_from_slice(&item.shapes[k]);
            }
        }
        hb
    }

    /// The batch's tensors on `device`.
    pub fn to_device(self, device: &Device) -> SpanBatch {
        let [b, t] = self.dims;
        let n = self.start.len();
        SpanBatch {
            input_ids: Tensor::<2, Int>::from_data(TensorData::new(self.ids, [b, t]), device),
            attention_mask: Tensor::<2>::from_data(TensorData::new(self.mask, [b, t]), device),
            start_index: Tensor::<1, Int>::from_data(TensorData::new(self.start, [n]), device),
            end_index: Tensor::<1, Int>::from_data(TensorData::new(self.end, [n]), device),
            width: Tensor::<1, Int>::from_data(TensorData::new(self.width, [n]), device),
            shape: Tensor::<2>::from_data(
                TensorData::new(self.shape, [n, SPAN_SHAPE_FEATURES]),
                device,
            ),
        }
    }
}

/// Builds the tensors of a batch of windows (right-padded with `pad_id`).
pub fn build_batch(items: &[&WindowItem], pad_id: u32, device: &Device) -> SpanBatch {
    HostBatch::new(items, pad_id).to_device(device)
}

/// Groups item indices into batches of at most `batch_size` sentences (a window counts the
/// sentences it owns, see [`WindowItem::sentences`]; a batch holds at least one window) and
/// `max_spans` spans, in order of token length (so padding is small).
pub fn length_buckets(
    items: &[WindowItem],
    order: &[usize],
    batch_size: usize,
    max_spans: usize,
) -> Vec<Vec<usize>> {
    let mut sorted: Vec<usize> = order.to_vec();
    sorted.sort_by_key(|&i| items[i].enc.ids.len());
    let mut batches = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let (mut spans, mut weight) = (0usize, 0usize);
    for i in sorted {
        let n = items[i].spans.len();
        let w = items[i].sentences.max(1);
        if !cur.is_empty() && (weight + w > batch_size.max(1) || spans + n > max_spans.max(1)) {
            batches.push(std::mem::take(&mut cur));
            spans = 0;
            weight = 0;
        }
        spans += n;
        weight += w;
        cur.push(i);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}
