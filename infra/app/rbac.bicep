// Least privilege: each principal gets data-plane roles on the entities it uses, scoped to those entities.
// The app's identity has no Service Bus send right on activation-requests: it cannot approve its own
// in-place restores (the hand-over after `activate: true` queues sessions in the ledger, not on that queue).
param appPrincipalId string
param serviceBusNamespaceName string
param restoreRequestsQueue string
param browseRequestsQueue string
param activationRequestsQueue string
param restoreEventsTopic string
param exampleSubscription string
param storageAccountName string
param ledgerTable string
param applicationInsightsName string
param approverPrincipalIds array
param requesterPrincipalIds array
param eventReaderPrincipalIds array
param deployerPrincipalId string
param deployerPrincipalType string

// Built-in role definitions, by id (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0' // Azure Service Bus Data Receiver
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39' // Azure Service Bus Data Sender
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName

  resource restoreRequests 'queues' existing = {
    name: restoreRequestsQueue
  }
  resource browseRequests 'queues' existing = {
    name: browseRequestsQueue
  }
  resource activationRequests 'queues' existing = {
    name: activationRequestsQueue
  }
  resource restoreEvents 'topics' existing = {
    name: restoreEventsTopic

    resource all 'subscriptions' existing = {
      name: exampleSubscription
    }
  }
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-01-01' existing = {
  name: storageAccountName

  resource tableService 'tableServices' existing = {
    name: 'default'

    resource ledger 'tables' existing = {
      name: ledgerTable
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// ---- the function app's identity ------------------------------------------------------------------------

// The three queue triggers receive (and complete, abandon, dead-letter) their messages.
resource appReceivesRestoreRequests 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::restoreRequests.id, appPrincipalId, serviceBusDataReceiver)
  scope: namespace::restoreRequests
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver) // Azure Service Bus Data Receiver
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appReceivesBrowseRequests 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::browseRequests.id, appPrincipalId, serviceBusDataReceiver)
  scope: namespace::browseRequests
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver) // Azure Service Bus Data Receiver
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appReceivesActivationRequests 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::activationRequests.id, appPrincipalId, serviceBusDataReceiver)
  scope: namespace::activationRequests
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver) // Azure Service Bus Data Receiver
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Transient failures come back as scheduled copies of the message on its own queue (retries.py).
resource appResendsRestoreRequests 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::restoreRequests.id, appPrincipalId, serviceBusDataSender)
  scope: namespace::restoreRequests
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender) // Azure Service Bus Data Sender
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appResendsBrowseRequests 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::browseRequests.id, appPrincipalId, serviceBusDataSender)
  scope: namespace::browseRequests
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender) // Azure Service Bus Data Sender
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Every event is published to the topic.
resource appPublishesEvents 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace::restoreEvents.id, appPrincipalId, serviceBusDataSender)
  scope: namespace::restoreEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender) // Azure Service Bus Data Sender
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The ledger: entity reads and ETag-conditional writes on its one table.
resource appWritesLedger 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount::tableService::ledger.id, appPrincipalId, storageTableDataContributor)
  scope: storageAccount::tableService::ledger
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor) // Storage Table Data Contributor
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// What the Functions host needs on its own storage (AzureWebJobsStorage over blobs: host leases, the timer's
// schedule monitor, the Flex Consumption deployment package), as Microsoft's Flex Consumption quickstarts grant
// it. The host creates its own containers, hence the account scope. No queue or table role on the account.
resource appHostStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, appPrincipalId, storageBlobDataOwner)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner) // Storage Blob Data Owner
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Microsoft Entra ID authentication (the component's local authentication is off).
resource appPublishesTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher) // Monitoring Metrics Publisher
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- people and automation ------------------------------------------------------------------------------

// Approvers of in-place restores: send on activation-requests, and nothing else.
resource approversApprove 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for approver in approverPrincipalIds: {
    name: guid(namespace::activationRequests.id, approver, serviceBusDataSender)
    scope: namespace::activationRequests
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender) // Azure Service Bus Data Sender
      principalId: approver
    }
  }
]

// Requesters (playbooks, the SOAR's identity) submit restore and browse requests.
resource requestersSubmitRestores 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for requester in requesterPrincipalIds: {
    name: guid(namespace::restoreRequests.id, requester, serviceBusDataSender)
    scope: namespace::restoreRequests
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender) // Azure Service Bus Data Sender
      principalId: requester
    }
  }
]

resource requestersSubmitBrowses 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for requester in requesterPrincipalIds: {
    name: guid(namespace::browseRequests.id, requester, serviceBusDataSender)
    scope: namespace::browseRequests
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender) // Azure Service Bus Data Sender
      principalId: requester
    }
  }
]

// Event readers receive from the example subscription (a topic subscription is the narrowest receive scope).
resource readersReceiveEvents 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for reader in eventReaderPrincipalIds: {
    name: guid(namespace::restoreEvents::all.id, reader, serviceBusDataReceiver)
    scope: namespace::restoreEvents::all
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver) // Azure Service Bus Data Receiver
      principalId: reader
    }
  }
]

// The user running azd: enough for the README's first request (send one, read the events), not to approve.
resource deployerSubmits 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(namespace::restoreRequests.id, deployerPrincipalId, serviceBusDataSender)
  scope: namespace::restoreRequests
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender) // Azure Service Bus Data Sender
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

resource deployerReadsEvents 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(namespace::restoreEvents::all.id, deployerPrincipalId, serviceBusDataReceiver)
  scope: namespace::restoreEvents::all
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver) // Azure Service Bus Data Receiver
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}
