//! Typed calls for the routes the gateway's mailbox view uses (spec "Folders",
//! "Folder", "Message", "Message Move", "Message Read", "Message Extensions", and the
//! `x-envelopes` pages): each
//! names its request and answer, so the backend never spells a `Route` or an answer
//! type it throws away. Session handling (re-login) stays in [`SessionClient::call`].

use crate::client::error::ClientError;
use crate::client::server::ServerClient;
use crate::client::session::SessionClient;
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::{SealedData, StoredEnvelope};
use crate::smimp::message::MessageType;
use crate::smimp::wire::{
    ChangeList, Deleted, EnvelopePage, Folder, FolderList, FolderName, MessageList, MessageSummary, MoveMessageRequest,
    Moved, Position, ReadStatus, Route, Updated, UserHistory, UserInfoKind,
};

impl ServerClient {
    /// A user's signed history (spec "Get User", public: no session).
    pub async fn user_history(&self, address: &Address) -> Result<UserHistory, ClientError> {
        self.call(&Route::GetUser { address: address.clone(), kind: UserInfoKind::History }, None, None::<&()>).await
    }
}

impl SessionClient {
    /// The account's folders of `message_type`.
    pub async fn list_folders(&self, message_type: MessageType) -> Result<Vec<Folder>, ClientError> {
        let list: FolderList = self.call(&Route::ListFolders { message_type: Some(message_type) }, None::<&()>).await?;
        Ok(list.folders)
    }

    /// Creates a folder; the server's answer is the folder as created.
    pub async fn create_folder(&self, folder: &Folder) -> Result<Folder, ClientError> {
        self.call(&Route::CreateFolder, Some(folder)).await
    }

    /// Gives the folder `folder_name` the state `update` (display name, parent).
    pub async fn update_folder(&self, folder_name: FolderName, update: &Folder) -> Result<Folder, ClientError> {
        self.call(&Route::UpdateFolder { folder_name }, Some(update)).await
    }

    /// Deletes an (empty) folder.
    pub async fn delete_folder(&self, message_type: MessageType, folder_name: FolderName) -> Result<(), ClientError> {
        let _: Deleted = self.call(&Route::DeleteFolder { message_type, folder_name }, None::<&()>).await?;
        Ok(())
    }

    /// The messages of a folder (`None`: the root folder), in arrival order.
    pub async fn list_messages(
        &self,
        message_type: MessageType,
        folder_name: Option<FolderName>,
    ) -> Result<Vec<MessageSummary>, ClientError> {
        let list: MessageList = self.call(&Route::ListMessages { message_type, folder_name }, None::<&()>).await?;
        Ok(list.messages)
    }

    /// One stored envelope, leaving its read status as it is.
    pub async fn get_message(&self, message_id: Id32) -> Result<StoredEnvelope, ClientError> {
        self.call(&Route::GetMessage { message_id, update_read: false }, None::<&()>).await
    }

    /// Extension `x-envelopes`: one page of a folder's envelopes stored after `after`,
    /// each with its current read status and extensions data. Only for a server that
    /// lists the extension (`ServerClient::implements`).
    pub async fn envelope_page(
        &self,
        message_type: MessageType,
        folder_name: Option<FolderName>,
        after: Position,
    ) -> Result<EnvelopePage, ClientError> {
        self.call(&Route::ListEnvelopes { message_type, folder_name, after }, None::<&()>).await
    }

    /// Deletes one message.
    pub async fn delete_message(&self, message_id: Id32) -> Result<(), ClientError> {
        let _: Deleted = self.call(&Route::DeleteMessage { message_id }, None::<&()>).await?;
        Ok(())
    }

    /// Moves one message to a folder (`None`: the root folder).
    pub async fn move_message(&self, message_id: Id32, folder_name: Option<FolderName>) -> Result<(), ClientError> {
        let _: Moved = self.call(&Route::MoveMessage { message_id }, Some(&MoveMessageRequest { folder_name })).await?;
        Ok(())
    }

    /// Sets the message's read status.
    pub async fn set_read(&self, message_id: Id32, read: bool) -> Result<(), ClientError> {
        let _: ReadStatus = self.call(&Route::SetReadStatus { message_id }, Some(&read)).await?;
        Ok(())
    }

    /// Replaces the message's sealed extensions data.
    pub async fn set_extensions(&self, message_id: Id32, sealed: SealedData) -> Result<(), ClientError> {
        let _: Updated = self.call(&Route::SetMessageExtensions { message_id }, Some(&Some(sealed))).await?;
        Ok(())
    }

    /// Extension `x-changes` (docs/protocol.md §8.29): one page of what changed in a
    /// folder after modseq `since`. Only for a server that lists `x-changes`.
    pub async fn list_changes(
        &self,
        message_type: MessageType,
        folder_name: Option<FolderName>,
        since: u64,
    ) -> Result<ChangeList, ClientError> {
        self.call(&Route::ListChanges { message_type, folder_name, since }, None::<&()>).await
    }
}
