//! The committed ensemble's sub-models in manifest order, as seeded rows and reports name them.

pub const MODEL_NAMES: [&str; 5] = [
    "alexnet-cbam",
    "vgg-cbam",
    "resnet-cbam",
    "inception-cbam",
    "densenet-cbam",
];
