//! The `ObjectStore` methods the request-policy layers pass through
//! unchanged, written once.

/// Implements `delete_stream`, `list` and `list_with_offset` by calling
/// `self.inner`: the wrappers in this crate neither disturb, retry, hedge
/// nor guard deletes and streamed listings (see their module docs).
macro_rules! forward_deletes_and_listings {
    () => {
        fn delete_stream(
            &self,
            locations: ::futures::stream::BoxStream<
                'static,
                ::object_store::Result<::object_store::path::Path>,
            >,
        ) -> ::futures::stream::BoxStream<'static, ::object_store::Result<::object_store::path::Path>>
        {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&::object_store::path::Path>,
        ) -> ::futures::stream::BoxStream<'static, ::object_store::Result<::object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }

        fn list_with_offset(
            &self,
            prefix: Option<&::object_store::path::Path>,
            offset: &::object_store::path::Path,
        ) -> ::futures::stream::BoxStream<'static, ::object_store::Result<::object_store::ObjectMeta>>
        {
            self.inner.list_with_offset(prefix, offset)
        }
    };
}

pub(crate) use forward_deletes_and_listings;
